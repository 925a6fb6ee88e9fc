"""memcached's wire formats: the ascii, meta and binary codecs (request builders, reply parsers).

Codecs build requests and parse replies from a buffer; they never do I/O. The
load engine and the control paths (SASL login, the binary control client) share them.
"""
