// A small History-API router. The route table lives in routes.js; this file only
// matches paths, renders into the outlet and turns same-app link clicks into navigations.
//
// A render function is called as render(outlet, {params, query, signal, setQuery, onQuery});
// it may return (or resolve to) a cleanup function, run before the next page renders.
// `signal` is aborted when the user navigates away, so slow pages can stop updating the DOM.
// A page that keeps its state in the query string records a change with setQuery(search)
// (a new history entry, no render) and, with onQuery(handler), redraws itself when Back or
// Forward returns to another query of the same path instead of being rendered again.

let table = [];
let fallback = null;
let outlet = null;
let onRouteChange = () => {};
let current = null; // {key, cleanup, controller}

const MAX_REDIRECTS = 5;

// "/websites/:id" → /^\/websites\/([^/]+)\/?$/ with the parameter names kept aside.
function compile(pattern) {
  const names = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/')
    .replace(/\/$/, '');
  return { regex: new RegExp(`^${source}/?$`), names };
}

function match(pathname) {
  for (const route of table) {
    const found = route.regex.exec(pathname);
    if (found) {
      const params = {};
      try {
        route.names.forEach((name, i) => {
          params[name] = decodeURIComponent(found[i + 1]);
        });
      } catch {
        return null; // malformed percent-encoding: no page has that address
      }
      return { render: route.render, params };
    }
  }
  return null;
}

/** Marks a route as an alias of another path: `'/home': redirect('/')`. */
export function redirect(to) {
  const render = () => navigate(to, { replace: true });
  render.redirectTo = to;
  return render;
}

function resolveRedirects(url) {
  for (let i = 0; i < MAX_REDIRECTS; i += 1) {
    const found = match(url.pathname);
    if (!found || !found.render.redirectTo) break;
    url = new URL(found.render.redirectTo + url.hash, location.origin);
  }
  return url;
}

/** True when `pathname` belongs to this single-page app (so links to it need no reload). */
export function isAppPath(pathname) {
  return match(pathname) !== null;
}

function scrollToHash() {
  let id = '';
  try {
    id = decodeURIComponent(location.hash.slice(1));
  } catch {
    return false;
  }
  const target = id && document.getElementById(id);
  if (!target) return false;
  target.scrollIntoView({ block: 'start' });
  // Keyboard and screen-reader users land where the link pointed, not at the top.
  if (!target.hasAttribute('tabindex') && target.tabIndex < 0) target.tabIndex = -1;
  target.focus({ preventScroll: true });
  return true;
}

async function render({ moveFocus }) {
  const target = resolveRedirects(new URL(location.href));
  if (target.href !== location.href) history.replaceState(null, '', target.href);

  const key = location.pathname + location.search;
  if (current && current.key === key) {
    scrollToHash();
    return;
  }
  if (current && current.onQuery && current.path === location.pathname) {
    current.key = key;
    current.onQuery(new URLSearchParams(location.search));
    return;
  }

  if (current) {
    current.controller.abort();
    if (typeof current.cleanup === 'function') current.cleanup();
  }
  const controller = new AbortController();
  const page = {
    key, path: location.pathname, cleanup: null, controller, onQuery: null,
  };
  current = page;

  const found = match(location.pathname);
  outlet.replaceChildren();
  onRouteChange(location.pathname);
  const context = {
    params: found ? found.params : {},
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    setQuery(search, { replace = false } = {}) {
      if (current !== page) return;
      history[replace ? 'replaceState' : 'pushState'](null, '', location.pathname + search);
      page.key = location.pathname + location.search;
    },
    onQuery(handler) {
      page.onQuery = handler;
    },
  };
  const cleanup = await (found ? found.render : fallback)(outlet, context);
  if (controller.signal.aborted) {
    if (typeof cleanup === 'function') cleanup();
    return;
  }
  page.cleanup = cleanup;

  if (!scrollToHash() && moveFocus) {
    window.scrollTo(0, 0);
    // Tell screen readers that the page changed by moving focus to its heading.
    const heading = outlet.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
}

export function navigate(path, { replace = false } = {}) {
  const url = resolveRedirects(new URL(path, location.href));
  if (url.href === location.href) replace = true;
  history[replace ? 'replaceState' : 'pushState'](null, '', url.href);
  return render({ moveFocus: true });
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest('a[href]');
  if (!link || link.hasAttribute('download')) return;
  if (link.target && link.target !== '_self') return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || !isAppPath(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

/**
 * routes: an object mapping path patterns to render functions (see routes.js);
 * notFound: render function for every other path; onRoute(pathname): called on each render.
 */
export function startRouter({ routes, notFound, outlet: element, onRoute }) {
  table = Object.entries(routes).map(([pattern, fn]) => ({ ...compile(pattern), render: fn }));
  fallback = notFound;
  outlet = element;
  if (onRoute) onRouteChange = onRoute;
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', () => render({ moveFocus: false }));
  return render({ moveFocus: false });
}
