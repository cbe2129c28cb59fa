// Confirmation dialogs loaded by htmx into #dialog-slot open as modals (focus trapped,
// Escape closes them) and are removed when closed. Without JavaScript the same dialog is
// a page of its own.
//
// Opened after htmx settles, not right after the swap: htmx focuses the new content's
// [autofocus] element as it settles (about 20 ms later), which would pull focus back from
// wherever a quick Tab had already moved it inside the dialog.
document.addEventListener("htmx:afterSettle", (event) => {
  const dialog = event.detail.target.querySelector("dialog.confirm:not([open])");
  if (!dialog) return;
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
});

// Escape closes the open confirmation dialog. Chromium's own Escape handling for modal
// dialogs can skip a press (its close-watcher rules about user activation), and a dialog
// that won't close traps a keyboard user.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const dialog = document.querySelector("dialog.confirm[open]");
  if (!dialog || !dialog.matches(":modal")) return;
  event.preventDefault();
  dialog.close();
});

// A dialog's Cancel/Keep link ([data-close-dialog]) closes the modal it is in; without
// JavaScript, or when the dialog is a page of its own, it is a plain link back.
document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-close-dialog]");
  const dialog = link && link.closest("dialog");
  if (!dialog || !dialog.open || !dialog.matches(":modal")) return;
  event.preventDefault();
  dialog.close();
});

// The page's own behaviours, here rather than in the templates: the Content-Security-Policy
// runs no inline script, event-handler attribute or evaluated string (portal/headers.py).

// A form marked [data-next-from-location] (the header's dark-mode switch) returns to the
// address bar's URL at submit time, which htmx may have pushed since the page was rendered.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-next-from-location")) return;
  if (form.elements.next) form.elements.next.value = location.pathname + location.search;
}, true);

// [data-print] prints the page (the receipt's Print button).
document.addEventListener("click", (event) => {
  if (!event.target.closest("[data-print]")) return;
  event.preventDefault();
  window.print();
});

// An opened <details> announces itself with a "details-opened" event, which a Versions
// panel loads on (hx-trigger="details-opened from:closest details"): htmx's filter
// toggle[target.open] would need its eval, which is off. "toggle" doesn't bubble: listen
// in the capture phase.
document.addEventListener("toggle", (event) => {
  const details = event.target;
  if (details instanceof HTMLDetailsElement && details.open) {
    details.dispatchEvent(new CustomEvent("details-opened"));
  }
}, true);
