// Confirmation dialogs loaded by htmx into #dialog-slot open as modals (focus trapped,
// Escape closes them) and are removed when closed. Without JavaScript the same dialog is
// a page of its own.
//
// Opened after htmx settles, not right after the swap: htmx focuses the new content's
// [autofocus] element as it settles (about 20 ms later), which would pull focus back from
// wherever a quick Tab had already moved it inside the dialog.
//
// The element that settled is the event's target: event.detail.target is the request's
// target (gone after an outerHTML swap), and a history restore has no request at all.
document.addEventListener("htmx:afterSettle", (event) => {
  if (!(event.target instanceof Element)) return;
  const closed = "dialog.confirm:not([open])";
  const dialog = event.target.matches(closed) ? event.target : event.target.querySelector(closed);
  if (!dialog) return;
  const here = document.activeElement;
  if (here && here !== document.body && !here.closest("#dialog-slot")) opener = here;
  returning = false;
  dialog.addEventListener("close", () => {
    dialog.remove();
    returning = true;
    focusOpener();
  });
  dialog.showModal();
});

// Focus goes back to the dialog's opener when it closes, as showModal's own return does,
// also when that can't work: a dialog sent back with its errors is a new dialog, opened while
// focus was nowhere (the old one had just been removed), and an action that closes its dialog
// may redraw the section the opener was in (then focus goes to the new element with the same
// hx-get, or id). The opener is kept across the dialog's redraws; after a close, the next
// settled swap checks once more (a section redrawn after the close).
let opener = null;
let returning = false;
function focusOpener() {
  const here = document.activeElement;
  if (!opener || (here && here !== document.body && here.isConnected)) return;
  let target = opener.isConnected ? opener : null;
  if (!target && opener.id) target = document.getElementById(opener.id);
  if (!target && opener.getAttribute("hx-get")) {
    target = document.querySelector(`[hx-get="${CSS.escape(opener.getAttribute("hx-get"))}"]`);
  }
  // The opener is gone (a revoked key's row has no Revoke link): the message that says what
  // happened takes focus, not the page's body.
  if (!target) target = focusableMessage();
  if (target) target.focus();
}
document.addEventListener("htmx:afterSettle", () => {
  if (!returning || document.querySelector("dialog.confirm[open]")) return;
  returning = false;
  focusOpener();
});
document.addEventListener("pointerdown", () => { returning = false; }, true);

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

// Tab and Shift+Tab stay inside an open modal dialog: past its last control focus wraps to
// its first, and back. (showModal makes the page behind it inert, but Tab past the end still
// leaves the page for the browser's own controls, and comes back on the page behind.)
// A radio group is one stop: its checked radio, or its first.
const TABBABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary, "
  + "[tabindex]:not([tabindex='-1'])";
function tabStops(dialog) {
  return [...dialog.querySelectorAll(TABBABLE)].filter((el) => {
    if (el.disabled || el.tabIndex < 0 || !el.getClientRects().length) return false;
    if (el.type !== "radio" || !el.name) return true;
    const group = [...dialog.querySelectorAll("input[type=radio]")].filter((r) => r.name === el.name);
    return el === (group.find((r) => r.checked) || group[0]);
  });
}
document.addEventListener("keydown", (event) => {
  if (event.key !== "Tab") return;
  const dialog = document.querySelector("dialog[open]");
  if (!dialog || !dialog.matches(":modal")) return;
  const stops = tabStops(dialog);
  if (!stops.length) return;
  const [first, last] = [stops[0], stops[stops.length - 1]];
  const here = document.activeElement;
  const inside = dialog.contains(here);
  const atEdge = (edge) => here === edge
    || (edge.type === "radio" && here && here.type === "radio" && here.name === edge.name);
  if (!inside || atEdge(event.shiftKey ? first : last)) {
    event.preventDefault();
    (event.shiftKey ? last : first).focus();
  }
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

// A filter form is drawn with its results and swapped with them (hx-target="#results"), so
// the controls always show what the rows were drawn from, after a history restore too. The
// swap must not take from the reader what they typed into the field they are in while the
// request was on its way (it is put back, and the form sent again once htmx has wired the
// new one: a request queued on the old form went with it), nor close a Filter panel they
// opened (details[id]).
let keptForSwap = null;
let sendAgain = null;
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  const active = document.activeElement;
  // Only a search box of a filter (a GET form): a field of a form that posts (an amount)
  // is drawn empty on purpose after it was sent, and must never be sent again by itself.
  const searching = active instanceof HTMLInputElement && active.type === "search" && active.id
    && active.form && active.form.method === "get" && target.contains(active);
  keptForSwap = {
    typed: searching ? { id: active.id, value: active.value } : null,
    open: [...target.querySelectorAll("details[open][id]")].map((details) => details.id),
  };
});
document.addEventListener("htmx:afterSwap", () => {
  if (!keptForSwap) return;
  const { typed, open } = keptForSwap;
  keptForSwap = null;
  open.forEach((id) => {
    const details = document.getElementById(id);
    if (details instanceof HTMLDetailsElement) details.open = true;
  });
  const field = typed && document.getElementById(typed.id);
  if (field instanceof HTMLInputElement && field.value !== typed.value) {
    field.value = typed.value;
    sendAgain = field.form;
  }
});
document.addEventListener("htmx:afterSettle", () => {
  const form = sendAgain;
  sendAgain = null;
  if (form && form.isConnected) form.requestSubmit();
});

// A dialog's action that is done (a card added) answers with the sections it changed, swapped
// where they are, and a close-dialog event (HX-Trigger): the dialog it came from closes.
document.addEventListener("close-dialog", (event) => {
  const from = event.target instanceof Element ? event.target.closest("dialog") : null;
  const dialog = from || document.querySelector("dialog.confirm[open]");
  if (dialog && dialog.open) dialog.close();
});

// An export link [data-export-from="<form id>"] exports what that filter form shows when it
// is clicked. Without JavaScript its href is the filter the page was drawn from, which the
// form then shows too.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element && event.target.closest("a[data-export-from]");
  const form = link && document.getElementById(link.dataset.exportFrom);
  if (!(form instanceof HTMLFormElement)) return;
  const url = new URL(link.href);
  url.search = new URLSearchParams(new FormData(form)).toString();
  link.href = url.toString();
}, true);

// [data-dismiss] removes the message it is in (a refused request's, portal/rendering.py).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-dismiss]");
  if (!button) return;
  button.closest(".flash")?.remove();
});

// Card entry (issue 16): a page or dialog with the processor's form ([data-card-entry]) or
// its challenge ([data-next-action]) loads static/card-entry.js once; that script mounts
// the processor's frame and handles the rest.
function loadCardEntry() {
  const holder = document.querySelector("[data-card-entry-script]");
  if (!holder || window.CardEntry || document.querySelector("script[data-card-entry-js]")) return;
  const script = document.createElement("script");
  script.src = holder.dataset.cardEntryScript;
  script.dataset.cardEntryJs = "";
  document.head.appendChild(script);
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", loadCardEntry);
else loadCardEntry();
document.addEventListener("htmx:afterSettle", loadCardEntry);

// [data-copy="<id>"] copies that element's text (a key or signing secret shown once) and says
// so in the button's status. Hidden without JavaScript (the text is there to select); where
// the clipboard is refused, the text is selected for Ctrl+C instead.
function showCopyButtons() {
  document.querySelectorAll("button[data-copy][hidden]").forEach((button) => {
    button.hidden = false;
  });
}
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element && event.target.closest("button[data-copy]");
  const source = button && document.getElementById(button.dataset.copy);
  if (!source) return;
  const status = document.getElementById(button.getAttribute("aria-describedby"));
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    if (status) status.textContent = "Copied.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    if (status) status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
});
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showCopyButtons);
else showCopyButtons();
document.addEventListener("htmx:afterSettle", showCopyButtons);

// A page that opens with a message of what just happened (a redirect after an action: "Revoked
// the API key …") puts focus on it, unless something else asked for focus ([autofocus]): a
// keyboard or screen reader user starts from the outcome, not from the top of the page.
function focusMessage() {
  if (document.activeElement && document.activeElement !== document.body) return;
  if (document.querySelector("[autofocus]")) return;
  focusableMessage()?.focus();
}

// The page's message of what just happened (base.html's flash), made focusable by script.
function focusableMessage() {
  const message = document.querySelector("main .flash[role='status']");
  if (message && !message.hasAttribute("tabindex")) message.tabIndex = -1;
  return message;
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", focusMessage);
else focusMessage();
