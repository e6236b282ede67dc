/*
 * adsite edge.js: the visitor's interest profile kept and scored in the browser (edge mode).
 *
 * Mirrors, for the edge model's features only, the one feature definition of inference/features
 * (ops.event_ops, readout.user_features, pairs.candidate_categories / pair_features) and the edge
 * model of inference/models/edge.py: tests/browser/test_edge_parity.py feeds the same events to both
 * and holds the probabilities to 1e-4. No dependencies, plain ES2017, no network.
 *
 * window.adsiteEdge:
 *   profileNew()                      an empty profile (a plain JSON object)
 *   observe(profile, event)           apply one event {type, ts (epoch seconds), categories, item_id}
 *   score(model, profile, now, top)   [{category, probability}], best first (model: the exported JSON)
 *   load(key) / save(profile, key, maxBytes) / erase(key)   localStorage, size-capped; erase forgets all
 */
(function () {
  'use strict';

  const INTEREST = { page_view: 1, click: 1, ad_click: 1, conversion: 1 };
  const SEQUENCE_LENGTH = 50;
  const HALF_LIVES = [['1h', 3600], ['1d', 86400], ['3d', 3 * 86400], ['7d', 7 * 86400], ['30d', 30 * 86400]];
  const DEFAULT_KEY = 'adsite_edge_profile';
  const DEFAULT_MAX_BYTES = 16 * 1024;
  const f32 = Math.fround;

  function profileNew() {
    // n: interest events; last: the newest interest event (s); c: counts; ls: last seen; d: decayed
    // sums per half-life at `last` (sum of 2^((t - last)/h)); seq: [ts, categories] in arrival order
    const d = {};
    HALF_LIVES.forEach(function (hl) { d[hl[0]] = {}; });
    return { v: 1, n: 0, last: null, c: {}, ls: {}, d: d, seq: [] };
  }

  function observe(p, event) {
    if (!INTEREST[event.type]) return p; // only interest events shape interests (ops.event_ops)
    const ts = Number(event.ts);
    const cats = [];
    (event.categories || []).forEach(function (c) {
      if (typeof c === 'string' && c && cats.indexOf(c) < 0) cats.push(c);
    });
    p.n += 1;
    if (p.last === null || ts > p.last) {
      // move every decayed sum to the new reference time
      if (p.last !== null) {
        HALF_LIVES.forEach(function (hl) {
          const factor = Math.pow(2, (p.last - ts) / hl[1]);
          const table = p.d[hl[0]];
          Object.keys(table).forEach(function (c) { table[c] *= factor; });
        });
      }
      p.last = ts;
    }
    cats.forEach(function (c) {
      p.c[c] = (p.c[c] || 0) + 1;
      if (!(c in p.ls) || ts > p.ls[c]) p.ls[c] = ts;
      HALF_LIVES.forEach(function (hl) {
        const table = p.d[hl[0]];
        table[c] = (table[c] || 0) + Math.pow(2, (ts - p.last) / hl[1]);
      });
    });
    p.seq.push([ts, cats]);
    if (p.seq.length > SEQUENCE_LENGTH) p.seq.splice(0, p.seq.length - SEQUENCE_LENGTH);
    return p;
  }

  function byCountThenName(counts) {
    return function (a, b) {
      const diff = counts[b] - counts[a];
      if (diff !== 0) return diff;
      return a < b ? -1 : a > b ? 1 : 0;
    };
  }

  function sum(table) {
    let total = 0;
    Object.keys(table).forEach(function (c) { total += table[c]; });
    return total;
  }

  // the exported model's derived tables, computed once per model object
  function prepared(model) {
    if (model._prepared) return model._prepared;
    const popularity = model.popularity;
    const ranking = Object.keys(popularity).sort(byCountThenName(popularity));
    const total = sum(popularity);
    const column = {};
    model.features.forEach(function (name, i) { column[name] = i; });
    const ready = { ranking: ranking, total: total, column: column };
    Object.defineProperty(model, '_prepared', { value: ready, enumerable: false });
    return ready;
  }

  function candidates(p, model, ready) {
    const popular = ready.ranking.slice(0, model.popular_k);
    const limit = model.max_candidates;
    // the recent sequence's categories (latest first), then the others by count: unique, in order
    const own = [];
    const ownSeen = new Set();
    function addOwn(c) { if (!ownSeen.has(c)) { ownSeen.add(c); own.push(c); } }
    const seq = sortedSequence(p);
    for (let i = seq.length - 1; i >= 0; i--) seq[i][1].forEach(addOwn);
    Object.keys(p.c).sort(byCountThenName(p.c)).forEach(addOwn);
    const out = [];
    const outSeen = new Set();
    own.slice(0, Math.max(0, limit - popular.length)).concat(popular).forEach(function (c) {
      if (c in model.popularity && !outSeen.has(c)) { outSeen.add(c); out.push(c); }
    });
    return out.slice(0, limit);
  }

  function sortedSequence(p) {
    // the read-out orders the kept sequence by time (a stable sort of the arrival order)
    return p.seq.map(function (item, i) { return [item[0], item[1], i]; })
      .sort(function (a, b) { return a[0] - b[0] || a[2] - b[2]; });
  }

  function score(model, p, now, top) {
    const ready = prepared(model);
    const cands = candidates(p, model, ready);
    const counts = p.c;
    const countTotal = sum(counts);
    const atLast = {};
    const shareTotal = {};
    HALF_LIVES.forEach(function (hl) { atLast[hl[0]] = p.d[hl[0]]; shareTotal[hl[0]] = sum(p.d[hl[0]]); });
    const seq = sortedSequence(p);
    const recent20 = {};
    const recent50 = {};
    for (let pos = 0, i = seq.length - 1; i >= 0; i--, pos++) {
      seq[i][1].forEach(function (c) {
        recent50[c] = (recent50[c] || 0) + 1;
        if (pos < 20) recent20[c] = (recent20[c] || 0) + 1;
      });
    }
    const order = Object.keys(counts).sort(byCountThenName(counts));
    const rank = {};
    order.forEach(function (c, i) { rank[c] = i; });
    const known = Math.max(order.length, 1);
    const last = p.last === null ? 0 : p.last;
    function decayedNow(label, seconds, c) {
      return (atLast[label][c] || 0) * Math.pow(2, (last - now) / seconds);
    }
    function share(label, c) {
      return shareTotal[label] > 0 ? (atLast[label][c] || 0) / shareTotal[label] : 0;
    }
    const features = {
      log_count: function (c) { return Math.log1p(counts[c] || 0); },
      count_share: function (c) { return countTotal ? (counts[c] || 0) / countTotal : 0; },
      log_decayed_86400s: function (c) { return Math.log1p(decayedNow('1d', 86400, c)); },
      log_decayed_604800s: function (c) { return Math.log1p(decayedNow('7d', 7 * 86400, c)); },
      decayed_share_86400s: function (c) { return share('1d', c); },
      decayed_share_604800s: function (c) { return share('7d', c); },
      decayed_share_2592000s: function (c) { return share('30d', c); },
      recent20_count: function (c) { return recent20[c] || 0; },
      recent50_count: function (c) { return recent50[c] || 0; },
      log_seconds_since_seen: function (c) {
        return Math.log1p(c in p.ls ? Math.max(0, now - p.ls[c]) : model.never_seen_s);
      },
      never_seen: function (c) { return c in p.ls ? 0 : 1; },
      log_user_events: function () { return Math.log1p(p.n); },
      frequency_rank: function (c) { return (c in rank ? rank[c] : known) / known; },
      population_share: function (c) { return ready.total > 0 ? (model.popularity[c] || 0) / ready.total : 0; },
      candidate_is_popular_only: function (c) { return counts[c] ? 0 : 1; },
    };
    const scored = cands.map(function (c) {
      let z = model.bias;
      model.features.forEach(function (name, i) { z += model.weights[i] * f32(features[name](c)); });
      return { category: c, logit: z };
    });
    scored.sort(function (a, b) {
      return b.logit - a.logit ||
        (model.popularity[b.category] || 0) - (model.popularity[a.category] || 0) ||
        (a.category < b.category ? -1 : a.category > b.category ? 1 : 0);
    });
    return scored.slice(0, top).map(function (s) {
      const z = Math.min(Math.max(s.logit, -30), 30);
      return { category: s.category, probability: 1 / (1 + Math.exp(-z)) };
    });
  }

  function load(key) {
    try {
      const raw = localStorage.getItem(key || DEFAULT_KEY);
      const p = raw ? JSON.parse(raw) : null;
      return p && p.v === 1 ? p : profileNew();
    } catch (e) {
      return profileNew();
    }
  }

  function save(p, key, maxBytes) {
    // the size cap: the oldest sequence entries go first, then the rarest categories
    const cap = maxBytes || DEFAULT_MAX_BYTES;
    let text = JSON.stringify(p);
    while (text.length > cap && p.seq.length > 10) {
      p.seq.splice(0, Math.ceil(p.seq.length / 4));
      text = JSON.stringify(p);
    }
    while (text.length > cap && Object.keys(p.c).length > 1) {
      const rare = Object.keys(p.c).sort(byCountThenName(p.c)).slice(-Math.ceil(Object.keys(p.c).length / 4));
      rare.forEach(function (c) {
        delete p.c[c];
        delete p.ls[c];
        HALF_LIVES.forEach(function (hl) { delete p.d[hl[0]][c]; });
      });
      text = JSON.stringify(p);
    }
    try {
      localStorage.setItem(key || DEFAULT_KEY, text);
      return true;
    } catch (e) {
      return false;
    }
  }

  function erase(key) {
    try { localStorage.removeItem(key || DEFAULT_KEY); } catch (e) { /* storage refused: nothing kept */ }
  }

  window.adsiteEdge = {
    profileNew: profileNew, observe: observe, score: score, load: load, save: save, erase: erase,
  };
})();
