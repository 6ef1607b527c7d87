-- Child runs: a run started by a step of another run (its parent), and which node of the
-- parent started it. A child goes with its parent; it is cancelled when the parent ends.
ALTER TABLE wf_runs ADD COLUMN parent_run_id BLOB REFERENCES wf_runs (id) ON DELETE CASCADE;
ALTER TABLE wf_runs ADD COLUMN parent_node INTEGER;
CREATE INDEX wf_runs_children ON wf_runs (parent_run_id, status);
