-- A deleted project is marked (its keys destroyed, its name freed) and its rows are then
-- purged in batches; until the purge ends, `deleted_at` says it is gone.
ALTER TABLE projects ADD COLUMN deleted_at INTEGER;
