import { api } from './api.js';
import { clearErrors, setBusy, showApiError, showFieldError, trimmedValue } from './forms.js';

const form = document.getElementById('login-form');
const general = document.getElementById('login-error');
const submit = document.getElementById('login-submit');

// Only same-site paths: "//evil.example" or "/\evil.example" would leave the site.
function nextLocation() {
  const next = new URLSearchParams(location.search).get('next') || '';
  if (!/^\/(?![/\\])/.test(next)) return '/';
  const url = new URL(next, location.origin);
  return url.origin === location.origin ? url.pathname + url.search + url.hash : '/';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(form, general);

  const email = trimmedValue(form, 'email');
  const password = form.elements.password.value;
  if (!email) showFieldError(form.elements.email, 'Enter your email address.');
  if (!password) showFieldError(form.elements.password, 'Enter your password.');
  if (!email || !password) {
    form.querySelector('[aria-invalid="true"]').focus();
    return;
  }

  setBusy(submit, true, 'Logging in…');
  try {
    await api.post('/auth/login', { email, password });
    location.assign(nextLocation());
  } catch (error) {
    setBusy(submit, false);
    showApiError(form, error, general);
    if (error.status === 401) {
      form.elements.password.value = '';
      form.elements.password.focus();
    }
  }
});
