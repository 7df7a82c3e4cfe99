// Fetch wrapper for the Jetrack JSON API (/api/v1). Every answer is an envelope
// {success, data, meta: {status, message, errors}}; failures become ApiError.

const BASE = '/api/v1';

let csrfToken = null;
let onUnauthorized = null;

export class ApiError extends Error {
  constructor(status, message, errors = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.errors = errors;
  }
}

export function setCsrfToken(token) {
  csrfToken = typeof token === 'string' && token ? token : null;
}

// The app registers this so an expired session anywhere sends the user to the login page.
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** Sends one request; resolves to the whole envelope's `{data, meta}`. */
export async function send(method, path, body) {
  const options = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  };
  if (method !== 'GET' && method !== 'HEAD') {
    options.headers['Content-Type'] = 'application/json';
    if (csrfToken) options.headers['X-CSRF-Token'] = csrfToken;
    if (body !== undefined) options.body = JSON.stringify(body);
    else if (method !== 'DELETE') options.body = '{}';
  }

  let response;
  try {
    response = await fetch(BASE + path, options);
  } catch {
    throw new ApiError(0, 'Could not reach the server. Check your connection and try again.');
  }

  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // A proxy error page or an empty body: handled below like any other failure.
  }

  if (!envelope || typeof envelope !== 'object' || typeof envelope.success !== 'boolean') {
    throw new ApiError(
      response.status,
      response.ok
        ? 'The server sent an unexpected answer.'
        : `The server answered with an error (${response.status}). Please try again.`,
    );
  }

  const meta = envelope.meta || {};
  if (!envelope.success) {
    const status = meta.status || response.status;
    const errors = Array.isArray(meta.errors) ? meta.errors.map(String) : [];
    const error = new ApiError(status, meta.message || 'Something went wrong.', errors);
    if (status === 401 && onUnauthorized) onUnauthorized(error);
    throw error;
  }

  const data = envelope.data;
  // Login, setup and session answers carry the CSRF token bound to the new session.
  if (data && typeof data === 'object' && typeof data.csrfToken === 'string') {
    setCsrfToken(data.csrfToken);
  }
  return { data, meta };
}

/** Sends one request; resolves to the envelope's `data`. */
export async function request(method, path, body) {
  return (await send(method, path, body)).data;
}

export const api = {
  get: (path) => request('GET', path),
  /** For paginated lists: resolves to `{data, meta}` so `meta.pagination` is kept. */
  getPage: (path) => send('GET', path),
  post: (path, body) => request('POST', path, body),
  patch: (path, body) => request('PATCH', path, body),
  put: (path, body) => request('PUT', path, body),
  delete: (path, body) => request('DELETE', path, body),
};
