// The dashboard's pages. Add a page by adding a line: a path pattern (":name" matches one
// path segment and arrives as params.name) mapped to a render function, see router.js.
// The server must also serve app.html for the new path.
import { redirect } from './router.js';
import { renderSettings } from './pages/settings.js';
import { renderNotFound } from './pages/not-found.js';

export const routes = {
  // Until the websites list exists, the account settings are the home page.
  '/': redirect('/settings'),
  '/settings': renderSettings,
};

export const notFound = renderNotFound;
