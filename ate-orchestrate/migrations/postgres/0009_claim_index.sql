-- Claims: the ready nodes of each tenant in the order claims take them (run priority, then
-- readiness). A claim finds the tenants with ready nodes by one probe each (a loose index
-- scan) and reads each tenant's most urgent nodes in index order: its cost grows with the
-- number of tenants and nodes it takes, not with the length of the queue.
CREATE INDEX wf_nodes_claim ON wf_nodes (tenant_id, priority DESC, ready_at, run_id, idx)
    WHERE status = 'ready';
