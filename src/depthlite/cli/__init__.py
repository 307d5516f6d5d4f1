"""The ``depthlite`` command line: thin wrappers that parse, call the library, map errors."""
