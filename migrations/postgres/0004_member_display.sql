-- The display name each membership row answers with (a user's displayName, else its
-- userName; a group's displayName), kept up to date by the store when the member is
-- renamed. Reading a group's members then needs no join: for a 110,000-member group the
-- join to scim_users was most of a full PATCH/PUT response on PostgreSQL (one index
-- lookup per member), and it grew a batch's answer with the group.
ALTER TABLE scim_members ADD COLUMN display TEXT;
UPDATE scim_members SET display = CASE
    WHEN member_type = 'Group' THEN (SELECT g.display_name FROM scim_groups g WHERE g.id = scim_members.member_id)
    ELSE (SELECT COALESCE(u.display_name, u.user_name) FROM scim_users u WHERE u.id = scim_members.member_id)
END;
