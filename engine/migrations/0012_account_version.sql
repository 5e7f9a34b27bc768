-- An account's authorisation version: access tokens carry the version they were issued at
-- (claim `ver`), and a token whose version is no longer the account's is refused, so a change
-- of role, permissions or account state takes effect on the next request (web/auth.py).
-- The bump is a trigger, not application code, on purpose: an operator's hand-written
-- `UPDATE users SET disabled = true` must end that user's sessions just like the staff route.
ALTER TABLE users ADD COLUMN auth_version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION users_bump_auth_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.auth_version := OLD.auth_version + 1;
    RETURN NEW;
END $$;

CREATE TRIGGER users_auth_version BEFORE UPDATE OF role, permissions, disabled ON users
    FOR EACH ROW
    WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.permissions IS DISTINCT FROM NEW.permissions
          OR OLD.disabled IS DISTINCT FROM NEW.disabled)
    EXECUTE FUNCTION users_bump_auth_version();
