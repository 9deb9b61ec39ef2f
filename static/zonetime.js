// Times of day on the visit pages, in the viewer's time zone as every other
// page shows them (the server formats those in the user's zone), not the
// browser's: the two differ when a physician works away from home or on a
// machine set to another zone. The page names the zone in data-time-zone
// (an IANA name, e.g. America/New_York); times carry its short name
// (e.g. "09:04 EST"), so a reader knows which zone they are in.

const named = document.querySelector('[data-time-zone]')?.dataset.timeZone || undefined;

/** formatter is a 24-hour clock in the page's zone, or the browser's when the browser does not know it. */
function formatter(opts) {
  try {
    return new Intl.DateTimeFormat(undefined, { ...opts, timeZone: named });
  } catch {
    return new Intl.DateTimeFormat(undefined, opts);
  }
}

const clock = formatter({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' });

/** timeZone is the IANA name of the zone times are shown in. */
export const timeZone = clock.resolvedOptions().timeZone;

/** clockTime shows an instant (ms since the epoch, or a Date) as its time of day with the zone's short name. */
export function clockTime(t) {
  return clock.format(t);
}
