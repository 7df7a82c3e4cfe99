// Form helpers shared by every page: inline field errors, a general error area,
// and a busy state for the submit button.
//
// Convention: an input's `name` is the API field name (email, newPassword, ...) and its
// error element is <p class="field-error" id="<input id>-error">.

function errorElementFor(input) {
  return input.id ? document.getElementById(`${input.id}-error`) : null;
}

function labelText(input) {
  const label = input.labels && input.labels[0];
  if (!label) return input.name;
  const copy = label.cloneNode(true);
  copy.querySelectorAll('.optional').forEach((el) => el.remove());
  return copy.textContent.trim();
}

// The API says "email: must be a valid email address"; under the field that reads best
// as "Email must be a valid email address." A message that is a sentence stays as it is.
function fieldMessage(input, message) {
  const text = /^[a-z]/.test(message) ? `${labelText(input)} ${message}` : message;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export function showFieldError(input, message) {
  const target = errorElementFor(input);
  input.setAttribute('aria-invalid', 'true');
  if (!target) return false;
  target.textContent = target.hidden || !target.textContent
    ? message
    : `${target.textContent} ${message}`;
  target.hidden = false;
  return true;
}

export function showGeneralError(element, message) {
  if (!element) return;
  element.textContent = message;
  element.hidden = !message;
}

export function clearErrors(form, generalElement) {
  for (const input of form.querySelectorAll('[aria-invalid="true"]')) {
    input.removeAttribute('aria-invalid');
  }
  for (const el of form.querySelectorAll('.field-error')) {
    el.textContent = '';
    el.hidden = true;
  }
  showGeneralError(generalElement, '');
}

/**
 * Shows an ApiError on a form: each "field: message" entry of `error.errors` under the
 * input whose name is `field`, everything else in `generalElement`. Focuses the first
 * invalid field.
 */
export function showApiError(form, error, generalElement) {
  const unmatched = [];
  let firstInvalid = null;

  for (const entry of error.errors || []) {
    const colon = entry.indexOf(':');
    const field = colon > 0 ? entry.slice(0, colon).trim() : '';
    const message = colon > 0 ? entry.slice(colon + 1).trim() : entry;
    const input = field ? form.elements.namedItem(field) : null;
    if (input && input.id && showFieldError(input, fieldMessage(input, message))) {
      firstInvalid = firstInvalid || input;
    } else {
      unmatched.push(entry);
    }
  }

  if (!firstInvalid || unmatched.length) {
    const sentence = /[.!?]$/.test(error.message) ? error.message : `${error.message}.`;
    showGeneralError(generalElement, unmatched.length ? `${sentence} ${unmatched.join('; ')}` : error.message);
  }
  if (firstInvalid) firstInvalid.focus();
}

export function setBusy(button, busy, busyLabel) {
  if (busy) {
    button.dataset.label = button.textContent;
    if (busyLabel) button.textContent = busyLabel;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

export function trimmedValue(form, name) {
  return form.elements.namedItem(name).value.trim();
}

/**
 * Runs `action()` on each submit of `form`: errors cleared first, the submit button busy
 * meanwhile, and an ApiError it throws shown on the form (see showApiError).
 */
export function onSubmit(form, { submit, general, status, busyLabel }, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, general);
    if (status) status.textContent = '';
    setBusy(submit, true, busyLabel);
    try {
      await action();
    } catch (error) {
      showApiError(form, error, general);
    } finally {
      setBusy(submit, false);
    }
  });
}
