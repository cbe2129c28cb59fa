// Confirmation dialogs loaded by htmx into #dialog-slot open as modals (focus trapped,
// Escape closes them) and are removed when closed. Without JavaScript the same dialog is
// a page of its own.
document.addEventListener("htmx:afterSwap", (event) => {
  const dialog = event.detail.target.querySelector("dialog.confirm:not([open])");
  if (!dialog) return;
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
});
