"""Operations: the checks, backups, certificates and database care behind ``awe doctor``,
``awe backup``, ``awe certs``, ``awe db stats`` and friends. Services call these; entry points
call the services."""
