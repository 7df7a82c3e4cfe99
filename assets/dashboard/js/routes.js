// The dashboard's pages. Add a page by adding a line: a path pattern (":name" matches one
// path segment and arrives as params.name) mapped to a render function, see router.js.
// The server must also serve app.html for the new path.
import { renderSettings } from './pages/settings.js';
import { renderNotFound } from './pages/not-found.js';
import { renderWebsite } from './pages/website.js';
import { renderWebsiteSettings } from './pages/website-settings.js';
import { renderWebsites } from './pages/websites.js';

export const routes = {
  '/': renderWebsites,
  '/websites/:id': renderWebsite,
  '/websites/:id/settings': renderWebsiteSettings,
  '/settings': renderSettings,
};

export const notFound = renderNotFound;
