-- 004: names for the proxy (INVITE routing) and every other request handler.
--
-- aliases: extra names of a user (extension numbers such as 1001, other
-- addresses).  A request addressed to an alias is handled as if it were
-- addressed to the user's AOR (server/proxy/alias.h).  The server keeps
-- the whole table in memory; this trigger announces every change (also
-- the cascade of a deleted user) on channel simpled_aliases with the
-- alias as payload, in the same transaction, so running servers re-read
-- that one row as it commits.
--
-- The user directory (display name, photo URL) needs no new column:
-- users.display_name and users.photo_url exist since 001; changes are
-- announced on simpled_users by simplectl like every other user change.
CREATE TABLE aliases (
    alias       text   PRIMARY KEY,  -- sip:1001@example.test (host lower-cased)
    username    text   NOT NULL,
    domain      text   NOT NULL,
    created_at  bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    FOREIGN KEY (username, domain) REFERENCES users (username, domain)
        ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX aliases_user_idx ON aliases (username, domain);

CREATE FUNCTION aliases_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('simpled_aliases', OLD.alias);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('simpled_aliases', NEW.alias);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER aliases_notify AFTER INSERT OR UPDATE OR DELETE ON aliases
    FOR EACH ROW EXECUTE FUNCTION aliases_notify();
