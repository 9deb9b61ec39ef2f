// Page behaviour shared by the server-rendered pages: after htmx swaps in
// new content, move keyboard and screen-reader focus to what changed, so a
// booking or a week change is announced and the next Tab starts there.

// htmx:load fires on each element htmx has just put into the page; it
// bubbles from there, unlike the events of the element that asked (which a
// swap of #main has already removed).
document.addEventListener('htmx:load', (event) => {
  const root = event.detail.elt;
  // Only whole-page swaps move focus: partial updates that refresh
  // results (patient search, the physician's list) keep it where the user
  // is typing.
  if (!(root instanceof Element) || root.id !== 'main') return;
  const target = root.querySelector('.flash') || root.querySelector('h1, h2');
  if (!target) return;
  if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
  target.focus();
});
