// Account settings: profile and password. The #api-keys and #security-activity sections
// of the template are filled by their own modules.
import { api } from '../api.js';
import { cancelConfirm } from '../dialog.js';
import { cloneTemplate, setTitle } from '../dom.js';
import { onSubmit, showFieldError, trimmedValue } from '../forms.js';
import { getAccount, setAccount } from '../session.js';
import { setupActivity } from '../settings/activity.js';
import { setupApiKeys } from '../settings/api-keys.js';

function fillProfile(form, account) {
  form.querySelector('#profile-email').value = account.email;
  form.elements.firstName.value = account.firstName || '';
  form.elements.lastName.value = account.lastName || '';
  form.elements.picture.value = account.picture || '';
}

function setupProfile(root) {
  const form = root.querySelector('#profile-form');
  const general = root.querySelector('#profile-error');
  const status = root.querySelector('#profile-status');
  const submit = root.querySelector('#profile-save');

  fillProfile(form, getAccount());
  form.addEventListener('input', () => {
    status.textContent = '';
  });

  onSubmit(form, {
    submit, general, status, busyLabel: 'Saving…',
  }, async () => {
    const account = await api.patch('/account', {
      firstName: trimmedValue(form, 'firstName') || null,
      lastName: trimmedValue(form, 'lastName') || null,
      picture: trimmedValue(form, 'picture') || null,
    });
    setAccount(account);
    fillProfile(form, account);
    status.textContent = 'Profile saved';
  });
}

function setupPassword(root, onChange) {
  const form = root.querySelector('#password-form');
  const general = root.querySelector('#password-error');
  const status = root.querySelector('#password-status');
  const submit = root.querySelector('#password-submit');

  form.addEventListener('input', () => {
    status.textContent = '';
  });

  onSubmit(form, {
    submit, general, status, busyLabel: 'Changing password…',
  }, async () => {
    const { currentPassword, newPassword, newPasswordConfirm } = form.elements;
    if (newPasswordConfirm.value !== newPassword.value) {
      showFieldError(newPasswordConfirm, 'The new passwords do not match.');
      newPasswordConfirm.focus();
      return;
    }
    await api.post('/account/password', {
      currentPassword: currentPassword.value,
      newPassword: newPassword.value,
    });
    form.reset();
    status.textContent = 'Password changed. Other sessions were signed out.';
    onChange();
  });
}

export function renderSettings(outlet, { signal }) {
  setTitle('Settings');
  const page = cloneTemplate('tpl-settings');
  const activity = setupActivity(page, { signal });
  setupProfile(page);
  setupPassword(page, activity.refresh);
  const forgetNewKey = setupApiKeys(page, { signal, onChange: activity.refresh });
  outlet.append(page);
  return () => {
    cancelConfirm();
    forgetNewKey();
  };
}
