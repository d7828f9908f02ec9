"""Operations on a whole store: backup, restore, the archive format, consistency checks."""
