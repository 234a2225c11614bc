-- Who ended a membership, when an admin did (NULL when the member left):
-- an invite made before an admin removed someone does not let them back in.
ALTER TABLE mesh_members ADD COLUMN removed_by TEXT REFERENCES users(id);
