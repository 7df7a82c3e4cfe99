// Confirmation through the <dialog id="confirm-dialog"> of app.html: showModal() keeps focus
// inside it and makes the page behind inert; Escape cancels.

/**
 * Asks the user to confirm. Resolves to true only when the confirm button was pressed.
 * `confirmLabel` names the action ("Revoke API Key"), never just "OK".
 */
export function confirmAction({ title, message, confirmLabel, danger = true }) {
  const dialog = document.getElementById('confirm-dialog');
  const ok = document.getElementById('confirm-ok');
  const cancel = document.getElementById('confirm-cancel');
  const opener = document.activeElement;

  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-message').textContent = message;
  ok.textContent = confirmLabel;
  ok.classList.toggle('button-danger', danger);
  dialog.returnValue = '';

  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      // The opener may have been removed meanwhile (a revoked key's row): callers then
      // move focus themselves.
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.showModal();
    // The safe choice has focus first, so a hurried Enter does not destroy anything.
    cancel.focus();
  });
}

/** Closes the dialog as cancelled (used when the page it was opened from goes away). */
export function cancelConfirm() {
  const dialog = document.getElementById('confirm-dialog');
  if (dialog.open) dialog.close('');
}
