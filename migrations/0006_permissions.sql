-- 0006 permissions the engine checks that 0005 did not seed.
--
-- connections.read_secret: reading a publishing token in the clear (open_secret). Owners,
--   admins and editors publish, so they need the token; a viewer must never read it.
-- data.export, data.erase: exporting and erasing the tenant's data (GDPR). Owners and admins.
-- keys.rotate stays with the owner alone (0005): a rotation re-encrypts every secret of the
--   tenant and retires a key, an act of key custody rather than of administration.

INSERT INTO role_permissions (role, permission) VALUES
    ('owner', 'connections.read_secret'),
    ('admin', 'connections.read_secret'),
    ('editor', 'connections.read_secret'),
    ('owner', 'data.export'),
    ('admin', 'data.export'),
    ('owner', 'data.erase'),
    ('admin', 'data.erase');
