import { api } from './api.js';
import {
  clearErrors, setBusy, showApiError, showFieldError, showGeneralError, trimmedValue,
} from './forms.js';

const token = new URLSearchParams(location.search).get('token') || '';
const form = document.getElementById('setup-form');
const general = document.getElementById('setup-error');
const submit = document.getElementById('setup-submit');

function show(id) {
  for (const panel of ['setup-loading', 'setup-done', 'setup-no-token', 'setup-main']) {
    document.getElementById(panel).hidden = panel !== id;
  }
}

async function init() {
  let needed = true;
  try {
    ({ needed } = await api.get('/auth/setup'));
  } catch {
    // Unknown state: offer the form anyway; submitting reports the real problem.
  }
  if (!needed) {
    show('setup-done');
  } else if (!token) {
    show('setup-no-token');
  } else {
    show('setup-main');
    document.getElementById('setup-first-name').focus();
  }
}

function optional(name) {
  return trimmedValue(form, name) || undefined;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(form, general);

  const password = form.elements.password.value;
  const confirm = form.elements.passwordConfirm;
  if (confirm.value !== password) {
    showFieldError(confirm, 'The passwords do not match.');
    confirm.focus();
    return;
  }

  setBusy(submit, true, 'Creating account…');
  try {
    await api.post('/auth/setup', {
      token,
      email: trimmedValue(form, 'email'),
      password,
      firstName: optional('firstName'),
      lastName: optional('lastName'),
    });
    location.assign('/');
  } catch (error) {
    setBusy(submit, false);
    if (error.status === 403) {
      showGeneralError(general, error.message);
    } else {
      showApiError(form, error, general);
    }
  }
});

init();
