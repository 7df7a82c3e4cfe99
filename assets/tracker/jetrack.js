/*! Jetrack tracker, SPEC 3.1: <script defer src=".../js/jetrack.js" data-website-id="UUID">.
 * No cookie, no storage writes unless data-cookie-mode="true". jetrack.track(name, props) */
(function (w, d, l, h, n) {
  var s = d.currentScript, ref = d.referrer, api, vid, lastU, lastP, timer,
    a = function (k) { return s && s.getAttribute('data-' + k) },
    on = function (k) { return a(k) == 'true' },
    id = a('website-id'), hash = on('hash'), J = w.jetrack = { track: function () {} };

  if (!id || on('respect-dnt') && (n.doNotTrack == 1 || w.doNotTrack == 1) ||
    !on('allow-localhost') && (/^(localhost|127\.0\.0\.1|\[::1\])$/.test(l.hostname) || l.protocol == 'file:')) return;
  api = (a('host-url') || new URL(s.src, l).origin).replace(/\/+$/, '') + '/api/collect';

  function send(type, x) {
    try { if (localStorage.jetrack_ignore == 'true') return } catch (e) {}
    var p = { type: type, websiteId: id, url: l.href, referrer: ref, screenWidth: screen.width, language: n.language }, k;
    for (k in x) p[k] = x[k];
    if (vid) p.visitorId = vid;
    p = JSON.stringify(p);
    try { if (n.sendBeacon(api, p)) return } catch (e) {}
    fetch(api, { method: 'POST', body: p, keepalive: true, credentials: 'omit' })['catch'](function () {});
  }
  function track(name, props) { send('event', { name: name, props: props }) }

  // a new URL (+hash if data-hash) counts; replaceState only a new path; referrer once
  function pv(rep) {
    var p = l.pathname + (hash ? l.hash : ''), u = p + ' ' + l.search;
    if (rep ? p != lastP : u != lastU) send('pageview'), ref = '';
    lastU = u; lastP = p;
  }
  function beat() {
    clearInterval(timer);
    if (d.visibilityState == 'visible') timer = setInterval(send, 15e3, 'heartbeat');
  }

  if (on('cookie-mode')) {
    vid = (d.cookie.match(/(^|; )bj_vid=([\da-f-]{36})(;|$)/) || [])[2] || (crypto.randomUUID ? crypto.randomUUID() :
      '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, function (c) {
        return (c ^ crypto.getRandomValues(new Uint8Array(1))[0] & 15 >> c / 4).toString(16);
      }));
    d.cookie = 'bj_vid=' + vid + ';Max-Age=63072000;Path=/;SameSite=Lax' + (l.protocol == 'https:' ? ';Secure' : '');
  }

  function start() {
    J.track = track;
    pv();
    ['pushState', 'replaceState'].forEach(function (k, i) {
      var o = h[k];
      h[k] = function () { var r = o.apply(this, arguments); pv(i); return r };
    });
    w.addEventListener('popstate', function () { pv() });
    if (hash) w.addEventListener('hashchange', function () { pv() });
    d.addEventListener('visibilitychange', beat);
    beat();
    d.addEventListener('click', function (e) {
      var t = e.target, el, pr = {}, i = 0, at;
      if (!t.closest) return;
      if (el = t.closest('[data-jetrack-event]')) {
        for (; at = el.attributes[i++];) if (!at.name.indexOf('data-jetrack-prop-')) pr[at.name.slice(18)] = at.value;
        track(el.getAttribute('data-jetrack-event'), pr);
      }
      if (on('outbound-links') && (el = t.closest('a[href]')) && /^https?:$/.test(el.protocol) && el.host != l.host)
        track('Outbound Link', { url: el.href });
    }, true);
  }
  // a prerendered page counts once shown
  d.prerendering ? d.addEventListener('prerenderingchange', start, { once: true }) : start();
})(window, document, location, history, navigator);
