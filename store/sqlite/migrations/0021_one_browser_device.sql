-- A patient's browser streams as one device credential, made at its first
-- connection. Two first connections at once (two tabs opening the visit)
-- could each find none and each make one. At most one browser device of a
-- patient may now be live (not revoked), so the second insert fails and
-- its connection takes the one that won.
--
-- A patient may already have more than one: the newest is the one their
-- browser streams as (and, if revoked, the one that keeps it off), so
-- every older live one is revoked. Their readings stay theirs.
UPDATE credentials SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE kind = 'device' AND browser = 1 AND revoked_at = 0
  AND EXISTS (SELECT 1 FROM credentials AS newer
              WHERE newer.kind = 'device' AND newer.browser = 1
                AND newer.user_id = credentials.user_id AND newer.id > credentials.id);
CREATE UNIQUE INDEX credentials_one_live_browser ON credentials (user_id)
WHERE kind = 'device' AND browser = 1 AND revoked_at = 0;
