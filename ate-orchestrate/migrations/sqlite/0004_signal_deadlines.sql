-- When a waiting signal node fails for want of its signal (NULL: it waits as long as the
-- run lives). Set when the node starts waiting; maintenance fails the nodes whose time
-- has come.
ALTER TABLE wf_nodes ADD COLUMN wait_until BIGINT;
CREATE INDEX wf_nodes_waiting ON wf_nodes (status, wait_until);
