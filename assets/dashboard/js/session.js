// The logged-in account, shared by the navigation and the pages.
import { api } from './api.js';

let account = null;
const listeners = new Set();

export function getAccount() {
  return account;
}

export function setAccount(next) {
  account = next;
  for (const listener of listeners) listener(account);
}

/** Calls `listener(account)` whenever the account changes; returns an unsubscribe function. */
export function onAccountChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function fullName(a) {
  return [a.firstName, a.lastName].map((part) => (part || '').trim()).filter(Boolean).join(' ');
}

export function displayName(a) {
  return fullName(a) || a.email;
}

export function initials(a) {
  const first = (s) => Array.from((s || '').trim())[0] || '';
  const letters = first(a.firstName) + first(a.lastName);
  return (letters || first(a.email) || '?').toUpperCase();
}

export async function logout() {
  try {
    await api.post('/auth/logout');
  } catch {
    // The session may already be gone; the login page is the right place either way.
  }
  location.assign('/login');
}
