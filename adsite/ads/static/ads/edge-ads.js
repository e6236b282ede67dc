/*
 * adsite edge-ads.js: the page's ads chosen in the visitor's browser (edge mode).
 *
 * The server offers, per placement, the creatives that may run, from the page's context only
 * (GET /edge/ads?placements=...: no visitor id, no cookie). This script scores each offer the way
 * adsite.ads.decisions.ads_select scores a candidate, with the interests the edge model computes on
 * the device (inference's edge.js): the campaign's interest weights over the visitor's interest shares
 * against the population's, the interest lift bounded and smoothed with the server's knobs, times the
 * creative's sampled quality, times the CPC bid (a CPM bid is its own value); the best tier first, then
 * the highest value; one advertiser per page (house excepted); the campaign's frequency caps counted
 * here, in localStorage. It then names its choices to POST /edge/ads/serve, which reserves them like any
 * served impression and answers the signed click and impression links the page shows. Only the chosen
 * offers leave the browser; the interests never do.
 *
 * window.adsiteEdgeAds:
 *   shares(interests)                                 [{category, probability}] -> {category: share}
 *   rank(answer, shares, populationShares, now)      per placement {offer, value, lift} chosen, or null
 *   fill({lib, model, offersUrl, serveUrl})           Promise of the slots filled: [{placement, creative_id}]
 *   erase()                                           forget the frequency counts kept here
 * tests/ads/test_edge_ads_browser.py holds rank() to ads_select: the same choices on the same offers.
 */
(function () {
  'use strict';

  const CAPS_KEY = 'adsite_edge_ads';
  const CAPS_KEEP_S = 86400 * 2;
  const CAPS_MAX = 500;
  const HOUSE_RANK = 2;
  const w = window;
  const d = document;

  function shares(interests) {
    // the answer's probabilities as shares of the visitor's coming events (summing to 1 over the answer)
    let total = 0;
    interests.forEach(function (item) { total += Math.max(item.probability, 0); });
    const out = {};
    if (total > 0) interests.forEach(function (item) { out[item.category] = Math.max(item.probability, 0) / total; });
    return out;
  }

  function weighted(interests, scores) {
    // scoring.weighted_score: the campaign's interest weights applied to interest shares
    let weight = 0;
    let sum = 0;
    interests.forEach(function (pair) { weight += pair[1]; sum += pair[1] * (scores[pair[0]] || 0); });
    return weight ? sum / weight : 0;
  }

  function lift(relevance, base, knobs) {
    // scoring.interest_lift
    const ratio = Math.pow((relevance + knobs.smoothing) / (base + knobs.smoothing), knobs.lift_power);
    return Math.min(knobs.lift_max, Math.max(1 / knobs.lift_max, ratio));
  }

  // ---- frequency caps, counted on the device (the server has no visitor to count them for) ---------
  function capsRead(now) {
    try {
      const kept = JSON.parse(w.localStorage.getItem(CAPS_KEY) || '[]');
      return Array.isArray(kept) ? kept.filter(function (e) { return now - e[1] < CAPS_KEEP_S; }) : [];
    } catch (e) {
      return [];
    }
  }

  function capsRecord(campaignIds, now) {
    const kept = capsRead(now);
    campaignIds.forEach(function (id) { kept.push([id, now]); });
    try { w.localStorage.setItem(CAPS_KEY, JSON.stringify(kept.slice(-CAPS_MAX))); } catch (e) { /* not kept */ }
  }

  function capped(offer, seen, now) {
    // the ledger's hour and UTC day buckets
    let hour = 0;
    let day = 0;
    seen.forEach(function (e) {
      if (e[0] !== offer.campaign_id) return;
      if (Math.floor(e[1] / 3600) === Math.floor(now / 3600)) hour += 1;
      if (Math.floor(e[1] / 86400) === Math.floor(now / 86400)) day += 1;
    });
    return (offer.cap_per_hour && hour >= offer.cap_per_hour) || (offer.cap_per_day && day >= offer.cap_per_day);
  }

  function rank(answer, visitor, population, now, refused, shown) {
    // refused: campaigns the server refused since the offer; shown: placement -> offer already on the page
    const seen = capsRead(now);
    const byCreative = {};
    const scored = [];
    answer.offers.forEach(function (offer) {
      if (refused && refused.has(offer.campaign_id)) return;
      let entry = byCreative[offer.creative_id];
      if (!entry) {
        const targeted = offer.interests.length > 0;
        const relevance = targeted ? weighted(offer.interests, visitor) : 0;
        if (targeted && offer.interest_min_score > 0 && relevance < offer.interest_min_score) return;
        if (capped(offer, seen, now)) return;
        const l = targeted ? lift(relevance, weighted(offer.interests, population), answer.knobs) : 1;
        const p = Math.min(1, offer.quality * l);
        const value = offer.pricing === 'cpc' ? offer.bid_micros * p : offer.bid_micros / 1000;
        entry = byCreative[offer.creative_id] = { offer: offer, value: value, lift: l, places: {} };
        scored.push(entry);
      }
      entry.places[offer.placement] = offer;
    });
    // decisions.ads_select: tier, then expected value, ties by creative id
    scored.sort(function (a, b) {
      return a.offer.tier_rank - b.offer.tier_rank || b.value - a.value || a.offer.creative_id - b.offer.creative_id;
    });
    const creatives = new Set();
    const advertisers = new Set();
    function take(offer) {
      creatives.add(offer.creative_id);
      if (offer.tier_rank !== HOUSE_RANK) advertisers.add(offer.advertiser_id);
    }
    Object.keys(shown || {}).forEach(function (name) { take(shown[name]); });
    return answer.placements.map(function (placement) {
      if (shown && shown[placement.name]) return null;
      const entry = scored.find(function (e) {
        return e.places[placement.name] && !creatives.has(e.offer.creative_id)
          && (e.offer.tier_rank === HOUSE_RANK || !advertisers.has(e.offer.advertiser_id));
      });
      if (!entry) return null;
      take(entry.offer);
      return { offer: entry.places[placement.name], value: entry.value, lift: entry.lift };
    });
  }

  // ---- showing the chosen ad in its slot (the structure of templates/site/_ad_slot.html) ------------
  function el(tag, cls, text) {
    const node = d.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function show(slot, offer, served) {
    slot.classList.remove('ad-slot--house');
    slot.dataset.creativeId = String(offer.creative_id);
    slot.dataset.campaignId = String(offer.campaign_id);
    slot.dataset.impressionUrl = served.impression_url;
    slot.dataset.serveId = served.serve_id;
    slot.dataset.clickRecorded = 'server';
    slot.dataset.edgeChosen = '1';
    const label = el('p', 'ad-slot__label', 'Advertisement · ' + offer.advertiser);
    label.title = 'Why this ad: chosen in your browser from the interests it keeps; they were not sent to us';
    const link = el('a', 'ad-slot__creative');
    link.href = served.click_url;
    link.rel = 'sponsored noopener';
    const cta = el('span', 'ad-slot__cta', offer.cta + ' ');
    cta.appendChild(el('span', '', '→')).setAttribute('aria-hidden', 'true');
    const parts = [label];
    if (offer.html) {
      // an html creative runs only in a sandboxed frame, as the server-rendered slot shows it
      const frame = el('iframe', 'ad-slot__frame');
      frame.setAttribute('sandbox', '');
      frame.setAttribute('srcdoc', offer.html);
      frame.title = 'Advertisement by ' + offer.advertiser;
      frame.width = '300';
      frame.height = '250';
      frame.referrerPolicy = 'no-referrer';
      parts.push(frame);
    } else {
      if (offer.image_url) {
        const img = el('img', 'ad-slot__image');
        img.src = offer.image_url;
        img.alt = '';
        img.width = 300;
        img.height = 150;
        link.appendChild(img);
      }
      link.appendChild(el('span', 'ad-slot__headline', offer.headline));
      link.appendChild(el('span', 'ad-slot__body', offer.body));
    }
    link.appendChild(cta);
    parts.push(link);
    slot.replaceChildren.apply(slot, parts);
  }

  function serve(url, offers) {
    return w.fetch(url, {
      method: 'POST', credentials: 'omit', cache: 'no-store',
      body: JSON.stringify({ offers: offers }), // a string: sent as text/plain, no preflight
    }).then(function (response) { return response.ok ? response.json() : null; });
  }

  function fill(options) {
    const lib = options.lib;
    const model = options.model;
    const slots = {};
    d.querySelectorAll('.ad-slot[data-placement]').forEach(function (slot) { slots[slot.dataset.placement] = slot; });
    const names = Object.keys(slots);
    if (!names.length) return Promise.resolve([]);
    // the request names the page's placements and nothing else: no cookie, no id, no interests
    return w.fetch(options.offersUrl + '?placements=' + encodeURIComponent(names.join(',')), {
      credentials: 'omit', cache: 'no-store',
    }).then(function (response) { return response.ok ? response.json() : null; }).then(function (answer) {
      if (!answer || !answer.offers.length) return [];
      const now = Date.now() / 1000;
      const top = answer.interest_top || 40;
      // no model (none exported yet, or it failed to load): no interests, so every lift is 1 and the
      // offers rank by tier, quality and bid alone, as for a visitor the server knows nothing about
      const scorable = lib && model;
      const visitor = scorable ? shares(lib.score(model, lib.load(), now, top)) : {};
      const population = scorable ? shares(lib.score(model, lib.profileNew(), now, top)) : {};
      const filled = [];
      const refused = new Set();
      const onPage = {};
      function round(attempt) {
        const picks = rank(answer, visitor, population, now, refused, onPage).filter(Boolean);
        if (!picks.length) return Promise.resolve(filled);
        return serve(options.serveUrl, picks.map(function (pick) { return pick.offer.offer; })).then(function (reply) {
          if (!reply) return filled;
          const shown = [];
          reply.served.forEach(function (served, i) {
            const offer = picks[i].offer;
            if (served.outcome !== 'ok') { refused.add(offer.campaign_id); return; }
            show(slots[offer.placement], offer, served);
            onPage[offer.placement] = offer;
            shown.push(offer.campaign_id);
            filled.push({ placement: offer.placement, creative_id: offer.creative_id, campaign_id: offer.campaign_id });
          });
          capsRecord(shown, now);
          // a choice refused (its budget ran out since the offer) gives way to the next best, once
          return attempt < 1 && shown.length < picks.length ? round(attempt + 1) : filled;
        });
      }
      return round(0);
    }).catch(function () { return []; });
  }

  function erase() {
    try { w.localStorage.removeItem(CAPS_KEY); } catch (e) { /* nothing kept */ }
  }

  w.adsiteEdgeAds = { shares: shares, rank: rank, fill: fill, erase: erase };
})();
