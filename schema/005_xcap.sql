-- 005: XCAP documents (RFC 4825) and the buddy lists they hold.
--
-- xcap_documents: every user's XML documents, kept whole and exactly as
-- stored (resource-lists and rls-services per RFC 4826, and others), one
-- row per (application usage, owner, document name).  The running server
-- keeps them all in memory (presence/xcap_store.h); this trigger announces
-- every change on channel simpled_xcap with "auid owner name" as payload,
-- in the same transaction, so servers (and the resource list server) see
-- changes made by simplectl or by another server as they commit.
--
-- pres-rules (RFC 5025) are not stored here: they are a view over
-- presence_rules (002), so `simplectl rules` and XCAP share one truth.
CREATE TABLE xcap_documents (
    auid        text   NOT NULL,   -- resource-lists, rls-services, ...
    owner       text   NOT NULL,   -- alice@example.test (host lower-cased)
    name        text   NOT NULL,   -- index
    etag        text   NOT NULL,
    body        text   NOT NULL,
    updated_at  bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (auid, owner, name)
);
CREATE INDEX xcap_documents_owner_idx ON xcap_documents (owner);

CREATE FUNCTION xcap_documents_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('simpled_xcap', OLD.auid || ' ' || OLD.owner || ' ' || OLD.name);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND
        (NEW.auid, NEW.owner, NEW.name) IS DISTINCT FROM (OLD.auid, OLD.owner, OLD.name)) THEN
        PERFORM pg_notify('simpled_xcap', NEW.auid || ' ' || NEW.owner || ' ' || NEW.name);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER xcap_documents_notify AFTER INSERT OR UPDATE OR DELETE ON xcap_documents
    FOR EACH ROW EXECUTE FUNCTION xcap_documents_notify();
