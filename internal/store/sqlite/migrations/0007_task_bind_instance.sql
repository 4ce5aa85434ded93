-- A task is bound to its SPIFFE ID, usable by every instance of it, unless
-- it was opened with bind_instance (then only by the instance recorded).
-- Tasks stored before kept the old rule: bound to their instance if any.
ALTER TABLE tasks ADD COLUMN bind_instance INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET bind_instance = 1 WHERE instance <> '';
