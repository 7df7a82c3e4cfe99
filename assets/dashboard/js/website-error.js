// The error a website's pages show when the website cannot be loaded (deleted, someone
// else's, or the server unreachable).
import { setTitle } from './dom.js';

/**
 * Fills the error box `ids.box` of `page` (its title `ids.title`, its text `ids.message`)
 * for `error` and removes the page's content `ids.content`, so that one <h1> remains.
 */
export function showWebsiteError(page, error, ids) {
  const $ = (id) => page.querySelector(`#${id}`);
  const title = {
    404: 'Website not found',
    403: 'No access to this website',
  }[error.status] || 'The website could not be loaded';
  setTitle(title);
  $(ids.title).textContent = title;
  $(ids.message).textContent = error.status === 404
    ? 'There is no website at this address. It may have been deleted.'
    : error.message;
  $(ids.box).hidden = false;
  $(ids.content).remove();
}
