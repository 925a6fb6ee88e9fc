"""The server side: one endpoint object, the memcached process, the control client, TLS and SASL settings."""
