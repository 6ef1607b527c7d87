-- Maintenance mode: an instance taken out of rotation by hand (with a reason) and put back
-- later; its checks go on. Times are microseconds since the epoch.
ALTER TABLE registry_instances ADD COLUMN maintenance TEXT;
ALTER TABLE registry_instances ADD COLUMN maintenance_since BIGINT;
