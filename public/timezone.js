// The browser's time zone (an IANA name such as Europe/Berlin), for the chat server: when the
// signed-in person has no time zone stored yet, this one becomes theirs (coherex/chat/preferences.py).
// The chat's websocket carries the cookie; nothing else reads it.
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) {
      document.cookie =
        "coherex_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) {
    // an old browser without Intl time zones: the install's default zone is used
  }
})();
