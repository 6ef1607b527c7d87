-- The chain head takes the hash of the event linked to it in the statement that inserts the
-- event: one statement fewer per append. Only an event carrying the head's current sequence
-- number (the one the append just took) moves it.
CREATE TRIGGER audit_events_move_head AFTER INSERT ON audit_events
BEGIN
    UPDATE audit_chain_heads SET head_hash = NEW.hash
    WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq;
END;
