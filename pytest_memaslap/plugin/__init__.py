"""pytest's face: hooks that delegate, options, marks, the ``slap`` fixture, one mode per process role."""
