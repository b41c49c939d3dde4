-- The person's time zone (an IANA name such as Europe/Berlin): the schedules the builder drafts for
-- them use it. Null until known: the chat keeps the browser's on first use, and
-- `coherex users set-timezone` or the chat settings set it explicitly. The application checks the
-- name against the zone database (zoneinfo); the database only keeps its shape sane.
alter table public.profiles add column if not exists timezone text
  check (timezone is null or timezone ~ '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,2}$' and length(timezone) <= 64);

-- A person may change their own display name and time zone, not their email: invitations are
-- accepted by the email of the profile (public.accept_invitation), so an editable email would let
-- anyone accept an invitation sent to another address.
revoke update on public.profiles from authenticated;
grant update (display_name, timezone) on public.profiles to authenticated;
