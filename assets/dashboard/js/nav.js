// Top navigation: the active link and the profile menu, a disclosure (button with
// aria-expanded controlling a panel of links), not an ARIA menu widget.
import { displayName, fullName, initials, logout, onAccountChange } from './session.js';

const $ = (id) => document.getElementById(id);

function showAccount(account) {
  $('profile-initials').textContent = initials(account);
  $('profile-name').textContent = displayName(account);
  $('menu-name').textContent = fullName(account) || 'Your account';
  $('menu-email').textContent = account.email;
}

function setupMenu() {
  const wrapper = $('profile-area');
  const button = $('profile-menu-button');
  const menu = $('profile-menu');
  const items = () => Array.from(menu.querySelectorAll('.menu-item'));
  const isOpen = () => !menu.hidden;

  function open(focusItem) {
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    if (focusItem === 'first') items()[0].focus();
    if (focusItem === 'last') items().at(-1).focus();
  }

  function close({ restoreFocus = false } = {}) {
    if (!isOpen()) return;
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    if (restoreFocus) button.focus();
  }

  button.addEventListener('click', () => (isOpen() ? close() : open()));

  button.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      open('first');
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      open('last');
    }
  });

  // Arrow keys are a convenience on top of Tab, which already walks the items.
  menu.addEventListener('keydown', (event) => {
    const list = items();
    const index = list.indexOf(document.activeElement);
    const moves = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: list.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      list[(moves[event.key] + list.length) % list.length].focus();
    }
  });

  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && isOpen()) {
      event.preventDefault();
      close({ restoreFocus: wrapper.contains(document.activeElement) });
    }
  });

  document.addEventListener('click', (event) => {
    if (!wrapper.contains(event.target)) close();
  });

  // Tabbing out of the menu closes it. A null relatedTarget (a click on nothing
  // focusable) is left to the click handler above.
  wrapper.addEventListener('focusout', (event) => {
    if (event.relatedTarget && !wrapper.contains(event.relatedTarget)) close();
  });

  menu.addEventListener('click', (event) => {
    if (event.target.closest('a')) close();
  });

  $('logout-button').addEventListener('click', async (event) => {
    const logoutButton = event.currentTarget;
    logoutButton.disabled = true;
    await logout();
  });
}

export function initNav(account) {
  showAccount(account);
  onAccountChange(showAccount);
  setupMenu();
  $('profile-area').hidden = false;
}

/**
 * Marks the top-level link of the current page with aria-current="page", or of the current
 * section (its path, or the prefix in data-nav-section, then "/…") with aria-current="true".
 */
export function setActiveNav(pathname) {
  for (const link of document.querySelectorAll('.main-nav a')) {
    const path = new URL(link.href).pathname;
    const prefixes = [path, link.dataset.navSection].filter((p) => p && p !== '/');
    const inSection = prefixes.some((p) => pathname === p || pathname.startsWith(`${p}/`));
    if (pathname === path) link.setAttribute('aria-current', 'page');
    else if (inSection) link.setAttribute('aria-current', 'true');
    else link.removeAttribute('aria-current');
  }
}
