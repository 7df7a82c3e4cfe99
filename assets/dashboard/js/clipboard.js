// Copy buttons. navigator.clipboard needs a secure context (HTTPS or localhost); a server
// reached over plain HTTP on a LAN address falls back to the older execCommand('copy').

function legacyCopy(text) {
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'visually-hidden';
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** Resolves to true when `text` is on the clipboard. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused or document not focused: try the old way.
    }
  }
  return legacyCopy(text);
}

/**
 * Makes `button` copy `getText()`. The button reads "Copied" for a moment and `status` (a
 * role="status" element) tells screen readers; on failure `status` says how to copy by hand.
 * Returns a function that removes the listener.
 */
export function copyButton(button, getText, status) {
  let timer = 0;
  const label = button.textContent;
  async function onClick() {
    const ok = await copyText(getText());
    clearTimeout(timer);
    button.textContent = ok ? 'Copied' : label;
    if (status) {
      status.classList.toggle('status-error', !ok);
      status.textContent = ok
        ? 'Copied to the clipboard'
        : 'Could not copy. Select the text and press Ctrl+C (⌘C on a Mac).';
    }
    if (!ok) return;
    timer = setTimeout(() => {
      button.textContent = label;
      if (status) status.textContent = '';
    }, 2500);
  }
  button.addEventListener('click', onClick);
  return () => {
    clearTimeout(timer);
    button.removeEventListener('click', onClick);
  };
}
