/*
 * adsite tracker.js: first-party clickstream for the adsite pages. No dependencies, ES2017.
 *
 * Promises:
 * - Sends nothing, sets no cookie and stores nothing when the browser asks not to be tracked
 *   (navigator.doNotTrack === "1" or navigator.globalPrivacyControl === true), except where the site
 *   chose edge mode for such visitors (edgeMode "private"): then an interest profile is kept in this
 *   browser's localStorage only, never sent (README "Edge mode"; adsiteTracker.edge.erase() forgets it).
 * - Edge mode ("all", or "private" for those visitors): no clickstream at all; page views and clicks
 *   update the on-device profile (inference's edge.js), scored with the site's edge model file.
 * - Where consent is required (page config), events wait in memory until the visitor accepts;
 *   declining drops them and clears what was kept.
 * - Every event has the DESIGN.md schema: event_id, type, user_id, session_id, ts (epoch ms), url,
 *   referrer, item_id, categories, properties, and ad for ad events.
 * - page_view uses the page's data-page-view-id as event_id, so the server-side copy of the same
 *   page view and this one are stored once.
 * - Delivery is at least once: a batch stays in localStorage (bounded) until the collector answered
 *   (2xx, or a 4xx that no retry can fix) or the browser accepted the beacon; the server dedupes
 *   on event_id. While the page is visible, batches go by fetch (keepalive) so that a 503 or a
 *   network error is seen and retried; when the page is hidden or unloading they go by
 *   navigator.sendBeacon (text/plain Blob), with fetch keepalive as the fallback.
 *
 * Configuration: <script type="application/json" id="adsite-tracker-config">, overridable by a
 * window.ADSITE_TRACKER object. Public API: window.adsiteTracker.track(type, fields), .flush().
 */
(function () {
  'use strict';

  const w = window;
  const d = document;
  const nav = navigator;
  const OUTBOX_KEY = 'adsite_outbox';
  const OUTBOX_MAX_EVENTS = 500;
  const OUTBOX_MAX_AGE_MS = 2 * 24 * 3600 * 1000;
  const SESSION_KEY = 'adsite_session';
  const SESSION_IDLE_MS = 30 * 60 * 1000;
  const HELD_MAX_EVENTS = 100;
  const CHUNK_EVENTS = 50;
  const VIEWABLE_RATIO = 0.5;
  const VIEWABLE_MS = 1000;

  const cfg = Object.assign(
    {
      collectUrl: '/collect',
      consentRequired: false,
      consentCookie: 'adsite_consent',
      uidCookie: 'adsite_uid',
      pingSeconds: 15,
      flushSeconds: 5,
      batchSize: 20,
    },
    readJsonConfig(),
    typeof w.ADSITE_TRACKER === 'object' && w.ADSITE_TRACKER ? w.ADSITE_TRACKER : {}
  );

  function readJsonConfig() {
    const el = d.getElementById('adsite-tracker-config');
    if (!el) return {};
    try {
      return JSON.parse(el.textContent) || {};
    } catch (e) {
      return {};
    }
  }

  // ---- privacy signals and consent ------------------------------------------------------------
  function privacySignal() {
    const dnt = nav.doNotTrack || w.doNotTrack || nav.msDoNotTrack;
    return dnt === '1' || dnt === 'yes' || nav.globalPrivacyControl === true;
  }

  function cookieGet(name) {
    const parts = d.cookie ? d.cookie.split('; ') : [];
    for (const part of parts) {
      const eq = part.indexOf('=');
      if (part.slice(0, eq) === name) {
        try {
          return decodeURIComponent(part.slice(eq + 1));
        } catch (e) {
          return part.slice(eq + 1);
        }
      }
    }
    return null;
  }

  function cookieSet(name, value, days) {
    const secure = location.protocol === 'https:' ? '; Secure' : '';
    d.cookie = name + '=' + encodeURIComponent(value) + '; Max-Age=' + Math.round(days * 86400) + '; Path=/; SameSite=Lax' + secure;
  }

  function consentChoice() {
    const value = cookieGet(cfg.consentCookie);
    return value === 'granted' || value === 'denied' ? value : null;
  }

  const blocked = privacySignal();
  let allowed = !blocked && (!cfg.consentRequired || consentChoice() === 'granted');
  // Edge mode: this visitor's interest profile lives in this browser (localStorage, inference's
  // edge.js) and nothing of the clickstream is sent: every visitor ("all"), or those who send DNT/GPC
  // ("private"), who otherwise get no personalization at all.
  const edgeOn = cfg.edgeMode === 'all' || (cfg.edgeMode === 'private' && blocked);

  // ---- identity -----------------------------------------------------------------------------------
  function uuid4() {
    if (w.crypto && typeof w.crypto.randomUUID === 'function') {
      try {
        return w.crypto.randomUUID();
      } catch (e) { /* insecure context: fall through */ }
    }
    const b = new Uint8Array(16);
    if (w.crypto && w.crypto.getRandomValues) w.crypto.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  let uid = null;
  function userId() {
    if (uid) return uid;
    // The server sets the cookie too (same name); reuse what it set so both sides agree.
    uid = cookieGet(cfg.uidCookie) || cfg.uid || uuid4();
    if (cookieGet(cfg.uidCookie) !== uid) cookieSet(cfg.uidCookie, uid, 395);
    return uid;
  }

  function sessionId(now) {
    let s = null;
    try {
      s = JSON.parse(w.sessionStorage.getItem(SESSION_KEY));
    } catch (e) { /* unavailable or corrupt: start a new one */ }
    if (!s || typeof s.id !== 'string' || now - s.last > SESSION_IDLE_MS) s = { id: uuid4(), last: now };
    s.last = now;
    try {
      w.sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    } catch (e) { /* keep going without persistence */ }
    return s.id;
  }

  // ---- the page -----------------------------------------------------------------------------------
  function splitSlugs(value) {
    return (value || '').split(/[\s,]+/).filter(Boolean);
  }

  const page = {
    viewId: d.body.dataset.pageViewId || uuid4(),
    itemId: d.body.dataset.itemId || '',
    categories: splitSlugs(d.body.dataset.categories),
  };

  // ---- outbox: events not yet acknowledged, kept across page loads ---------------------------------
  function outboxRead() {
    try {
      const raw = JSON.parse(w.localStorage.getItem(OUTBOX_KEY) || '[]');
      return Array.isArray(raw) ? raw : [];
    } catch (e) {
      return null; // storage unavailable: deliver from memory only
    }
  }

  function outboxWrite(events) {
    try {
      if (events.length) w.localStorage.setItem(OUTBOX_KEY, JSON.stringify(events));
      else w.localStorage.removeItem(OUTBOX_KEY);
    } catch (e) { /* quota or disabled storage */ }
  }

  function outboxAdd(events) {
    const stored = outboxRead();
    if (stored === null) return;
    const cutoff = Date.now() - OUTBOX_MAX_AGE_MS;
    const kept = stored.concat(events).filter((ev) => typeof ev.ts === 'number' && ev.ts >= cutoff);
    outboxWrite(kept.slice(-OUTBOX_MAX_EVENTS));
  }

  function outboxRemove(ids) {
    const stored = outboxRead();
    if (stored === null || !stored.length) return;
    const gone = new Set(ids);
    outboxWrite(stored.filter((ev) => !gone.has(ev.event_id)));
  }

  function outboxClear() {
    try {
      w.localStorage.removeItem(OUTBOX_KEY);
    } catch (e) { /* nothing kept */ }
  }

  // ---- queue and delivery ----------------------------------------------------------------------
  let queue = []; // ready to send (tracking allowed)
  let held = []; // recorded before consent; sent only if the visitor accepts on this page
  const inflight = new Set();

  function retryable(status) {
    return status === 0 || status === 408 || status === 429 || status >= 500;
  }

  function sendByFetch(batch, body) {
    const ids = batch.map((ev) => ev.event_id);
    if (typeof w.fetch !== 'function') return false;
    ids.forEach((id) => inflight.add(id));
    w.fetch(cfg.collectUrl, {
      method: 'POST',
      body: new Blob([body], { type: 'text/plain' }),
      keepalive: body.length < 60000,
      credentials: 'same-origin',
    })
      .then((response) => {
        if (!retryable(response.status)) outboxRemove(ids);
      })
      .catch(() => { /* network error: stays in the outbox for the next flush */ })
      .then(() => ids.forEach((id) => inflight.delete(id)));
    return true;
  }

  function send(batch, unloading) {
    const body = JSON.stringify({ events: batch });
    if (unloading && typeof nav.sendBeacon === 'function') {
      let queued = false;
      try {
        queued = nav.sendBeacon(cfg.collectUrl, new Blob([body], { type: 'text/plain' }));
      } catch (e) {
        queued = false;
      }
      if (queued) {
        outboxRemove(batch.map((ev) => ev.event_id));
        return;
      }
    }
    if (!sendByFetch(batch, body) && !unloading && typeof nav.sendBeacon === 'function') {
      if (nav.sendBeacon(cfg.collectUrl, new Blob([body], { type: 'text/plain' }))) {
        outboxRemove(batch.map((ev) => ev.event_id));
      }
    }
  }

  function flush(unloading) {
    if (!allowed) return;
    const fresh = queue;
    queue = [];
    outboxAdd(fresh);
    const stored = outboxRead();
    const pending = (stored === null ? fresh : stored).filter((ev) => !inflight.has(ev.event_id));
    for (let i = 0; i < pending.length; i += CHUNK_EVENTS) send(pending.slice(i, i + CHUNK_EVENTS), unloading);
  }

  function stamp(ev) {
    ev.user_id = userId();
    ev.session_id = sessionId(Date.now());
    return ev;
  }

  function emit(type, fields) {
    if (edgeOn) return edgeRecord(type, fields || {});
    if (blocked) return null;
    const f = fields || {};
    const ev = {
      event_id: f.event_id || uuid4(),
      type: type,
      user_id: '',
      session_id: '',
      ts: Date.now(),
      url: f.url || location.href,
      referrer: f.referrer !== undefined ? f.referrer : d.referrer,
      item_id: f.item_id !== undefined ? f.item_id : page.itemId,
      categories: f.categories || page.categories,
      properties: f.properties || {},
    };
    if (f.ad) ev.ad = f.ad;
    if (allowed) {
      queue.push(stamp(ev));
      if (queue.length >= cfg.batchSize) flush(false);
    } else if (held.length < HELD_MAX_EVENTS) {
      held.push(ev); // no id stamped, nothing stored: consent has not been given
    }
    return ev.event_id;
  }

  function consentSet(choice) {
    cookieSet(cfg.consentCookie, choice, 180);
    const banner = d.querySelector('[data-consent-banner]');
    if (banner) banner.hidden = true;
    if (choice === 'granted' && !blocked) {
      allowed = true;
      queue = queue.concat(held.map(stamp));
      held = [];
      flush(false);
    } else {
      allowed = !blocked && !cfg.consentRequired;
      held = [];
      if (!allowed) {
        queue = [];
        outboxClear();
        d.cookie = cfg.uidCookie + '=; Max-Age=0; Path=/; SameSite=Lax';
        uid = null;
      }
    }
  }

  // ---- page views and engaged time ------------------------------------------------------------
  let engagedMs = 0;
  let engagedAtLastPing = 0;
  let maxScrollPct = 0;
  let lastTick = Date.now();
  let lastActivity = Date.now();
  const pingMs = Math.max(250, cfg.pingSeconds * 1000);
  const tickMs = Math.min(1000, pingMs / 2);
  // "Engaged" means visible and touched (scroll, key, pointer) within this window.
  const activityWindowMs = Math.max(2 * pingMs, 15000);

  function scrollPct() {
    const el = d.documentElement;
    const total = el.scrollHeight - w.innerHeight;
    return total > 0 ? Math.min(100, Math.round((w.scrollY / total) * 100)) : 100;
  }

  function pageView(eventId) {
    engagedMs = 0;
    engagedAtLastPing = 0;
    emit('page_view', { event_id: eventId, properties: { title: d.title.slice(0, 200) } });
  }

  function tick() {
    const now = Date.now();
    const delta = Math.min(now - lastTick, tickMs * 2); // a throttled timer must not count a long gap
    lastTick = now;
    if (d.visibilityState === 'visible' && now - lastActivity <= activityWindowMs) engagedMs += delta;
    maxScrollPct = Math.max(maxScrollPct, scrollPct());
    if (engagedMs - engagedAtLastPing >= pingMs) {
      engagedAtLastPing = engagedMs;
      emit('page_ping', { properties: { engaged_ms: Math.round(engagedMs), scroll_pct: maxScrollPct } });
    }
  }

  function activity() {
    lastActivity = Date.now();
  }

  // ---- ads: viewable impressions and clicks ---------------------------------------------------------
  function adOf(slot) {
    const ad = {
      creative_id: slot.dataset.creativeId || '',
      campaign_id: slot.dataset.campaignId || '',
      placement: slot.dataset.placement || '',
    };
    // the server's signed id of this served impression: an ad_impression counts only with it
    if (slot.dataset.serveId) ad.serve_id = slot.dataset.serveId;
    return ad;
  }

  const viewTimers = new Map();
  const ratios = new Map();
  let impressed = new Set();
  let observer = null;

  function armViewTimer(slot) {
    if (viewTimers.has(slot) || impressed.has(slot)) return;
    viewTimers.set(slot, setTimeout(() => {
      viewTimers.delete(slot);
      if (impressed.has(slot) || d.visibilityState !== 'visible') return;
      impressed.add(slot);
      if (observer) observer.unobserve(slot);
      if (edgeOn) return edgeViewable(slot);
      emit('ad_impression', { ad: adOf(slot), properties: { viewable: true, visible_ms: VIEWABLE_MS } });
    }, VIEWABLE_MS));
  }

  function disarmViewTimer(slot) {
    clearTimeout(viewTimers.get(slot));
    viewTimers.delete(slot);
  }

  function watchAds() {
    if (!('IntersectionObserver' in w)) return; // viewability cannot be shown: no impression claimed
    observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        ratios.set(entry.target, entry.isIntersecting ? entry.intersectionRatio : 0);
        if (entry.isIntersecting && entry.intersectionRatio >= VIEWABLE_RATIO && d.visibilityState === 'visible') {
          armViewTimer(entry.target);
        } else {
          disarmViewTimer(entry.target);
        }
      }
    }, { threshold: [0, 0.25, VIEWABLE_RATIO, 0.75, 1] });
    d.querySelectorAll('.ad-slot').forEach((slot) => observer.observe(slot));
  }

  function onVisibility() {
    if (d.visibilityState === 'hidden') {
      viewTimers.forEach((_, slot) => disarmViewTimer(slot)); // continuous visibility is broken
      if (!edgeOn) flush(true);
    } else {
      activity();
      ratios.forEach((ratio, slot) => { if (ratio >= VIEWABLE_RATIO) armViewTimer(slot); });
    }
  }

  function onClick(event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const choice = target.closest('[data-consent-choice]');
    if (choice) {
      consentSet(choice.getAttribute('data-consent-choice') === 'granted' ? 'granted' : 'denied');
      return;
    }
    if (target.closest('[data-consent-open]')) {
      const banner = d.querySelector('[data-consent-banner]');
      if (banner) banner.hidden = false;
      return;
    }
    const link = target.closest('a[href]');
    const slot = target.closest('.ad-slot');
    // Clicks are events from this page towards `url`; referrer is the page they happened on.
    if (slot) {
      if (slot.dataset.clickRecorded === 'server') return; // the ad's click URL records it already
      emit('ad_click', { url: link ? link.href : location.href, referrer: location.href, ad: adOf(slot) });
    } else if (link) {
      emit('click', {
        url: link.href,
        referrer: location.href,
        item_id: link.dataset.itemId || '',
        categories: splitSlugs(link.dataset.categories),
        properties: { text: (link.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 100), outbound: link.host !== location.host },
      });
    }
  }

  // ---- edge mode: the profile on the device ----------------------------------------------------------
  let edgePending = [];
  let edgeLib = null;
  let edgeModel = null;

  function scriptLoad(url, name) {
    return new Promise((resolve) => {
      if (w[name]) return resolve(w[name]);
      const script = d.createElement('script');
      script.src = url;
      script.async = true;
      script.onload = () => resolve(w[name] || null);
      script.onerror = () => resolve(null);
      d.head.appendChild(script);
    });
  }

  function edgeLoad() {
    if (!edgeLib) edgeLib = scriptLoad(cfg.edgeScriptUrl, 'adsiteEdge').then((lib) => { edgeApply(lib); return lib; });
    return edgeLib;
  }

  function edgeAdsFill() {
    // the page's ads, chosen here among offers made from the page's context (the ads app's script);
    // then their viewable impressions go to their signed impression links, as nothing else is sent
    if (!cfg.edgeAdsScriptUrl || !d.querySelector('.ad-slot')) return Promise.resolve([]);
    return Promise.all([edgeLoad(), edgeModelLoad(), scriptLoad(cfg.edgeAdsScriptUrl, 'adsiteEdgeAds')])
      .then(([lib, model, ads]) => (ads ? ads.fill({ lib: lib, model: model, offersUrl: cfg.edgeAdsUrl, serveUrl: cfg.edgeServeUrl }) : []))
      .catch(() => [])
      .then((filled) => { watchAds(); return filled; });
  }

  function edgeViewable(slot) {
    // a viewable impression of an ad chosen here: its signed link, without cookies (never an event)
    if (!slot.dataset.impressionUrl || typeof w.fetch !== 'function') return;
    w.fetch(slot.dataset.impressionUrl, { credentials: 'omit', keepalive: true, cache: 'no-store' }).catch(() => {});
  }

  // events recorded before edge.js loaded wait here, so that leaving a page early loses none
  const EDGE_PENDING_KEY = 'adsite_edge_pending';

  function edgePendingKeep() {
    try {
      if (edgePending.length) w.localStorage.setItem(EDGE_PENDING_KEY, JSON.stringify(edgePending.slice(-HELD_MAX_EVENTS)));
      else w.localStorage.removeItem(EDGE_PENDING_KEY);
    } catch (e) { /* storage refused: this page's events stay in memory */ }
  }

  function edgePendingRead() {
    try {
      const kept = JSON.parse(w.localStorage.getItem(EDGE_PENDING_KEY) || '[]');
      return Array.isArray(kept) ? kept : [];
    } catch (e) {
      return [];
    }
  }

  function edgeApply(lib) {
    if (!lib || !edgePending.length) return;
    const profile = lib.load();
    edgePending.forEach((ev) => lib.observe(profile, ev));
    edgePending = [];
    lib.save(profile);
    edgePendingKeep();
  }

  function edgeRecord(type, f) {
    // only what the profile needs, kept on the device; no id, no URL, nothing sent
    edgePending.push({
      type: type,
      ts: Date.now() / 1000,
      categories: f.categories || page.categories,
      item_id: f.item_id !== undefined ? f.item_id : page.itemId,
    });
    if (w.adsiteEdge) edgeApply(w.adsiteEdge);
    else edgePendingKeep();
    return null;
  }

  function edgeModelLoad() {
    // the same file for every visitor, fetched without cookies: it says nothing about who asks
    if (!edgeModel) {
      edgeModel = w.fetch(cfg.edgeModelUrl, { credentials: 'omit' })
        .then((response) => (response.ok ? response.json() : null))
        .catch(() => null);
    }
    return edgeModel;
  }

  const edge = {
    on: edgeOn,
    lastScoreMs: null,
    // the visitor's top interests, scored in this browser: [{category, probability}], best first
    interests: (top) => Promise.all([edgeLoad(), edgeModelLoad()]).then(([lib, model]) => {
      if (!lib || !model) return [];
      const started = performance.now();
      const answer = lib.score(model, lib.load(), Date.now() / 1000, top || 5);
      edge.lastScoreMs = performance.now() - started;
      return answer;
    }),
    profile: () => edgeLoad().then((lib) => (lib ? lib.load() : null)),
    // the page's ads chosen on this device: [{placement, creative_id, campaign_id}] once they are shown
    ads: null,
    // forget everything this browser kept about the visitor's interests
    erase: () => {
      edgePending = [];
      edgePendingKeep();
      if (w.adsiteEdge) w.adsiteEdge.erase();
      else try { w.localStorage.removeItem('adsite_edge_profile'); } catch (e) { /* nothing kept */ }
      if (w.adsiteEdgeAds) w.adsiteEdgeAds.erase();
      else try { w.localStorage.removeItem('adsite_edge_ads'); } catch (e) { /* nothing kept */ }
    },
  };

  // ---- start ---------------------------------------------------------------------------------------
  d.addEventListener('click', onClick, true);
  w.adsiteTracker = {
    track: (type, fields) => emit(type, fields),
    flush: () => flush(false),
    pageViewId: () => page.viewId,
    edge: edge,
  };
  if (edgeOn) {
    outboxClear(); // nothing of a clickstream is kept or sent in edge mode
    edgePending = edgePendingRead(); // what an earlier page recorded before it could apply it
    pageView(page.viewId);
    // after the page has loaded: the profile's and the ads' scripts never delay the first paint
    const edgeStart = () => { edgeLoad(); edge.ads = edgeAdsFill(); };
    if (d.readyState === 'complete') edgeStart();
    else w.addEventListener('load', edgeStart);
    d.addEventListener('visibilitychange', onVisibility);
    return;
  }
  if (blocked) {
    outboxClear(); // nothing kept from before the signal was switched on
    return;
  }
  pageView(page.viewId);
  watchAds();
  ['scroll', 'keydown', 'mousedown', 'mousemove', 'touchstart', 'wheel'].forEach((name) =>
    w.addEventListener(name, activity, { passive: true, capture: true }));
  d.addEventListener('visibilitychange', onVisibility);
  w.addEventListener('pagehide', () => flush(true));
  w.addEventListener('pageshow', (event) => {
    if (!event.persisted) return;
    // Back/forward cache: a new view of the page, with a new id (the server never saw it).
    page.viewId = uuid4();
    impressed = new Set();
    if (observer) d.querySelectorAll('.ad-slot').forEach((slot) => observer.observe(slot));
    pageView(page.viewId);
  });
  setInterval(tick, tickMs);
  setInterval(() => flush(false), Math.max(500, cfg.flushSeconds * 1000));
  flush(false); // deliver what earlier pages left in the outbox
})();
