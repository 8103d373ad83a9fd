/*
 * @label-noise/curation: the two browser-side pieces of the "Label noise"
 * panel, hand-written (no build step) against the globals the FiftyOne App
 * gives plugin bundles (window.React, __fop__ = @fiftyone/plugins,
 * __foo__ = @fiftyone/operators, __fos__ = @fiftyone/state), like the UMD
 * bundles @voxel51/fiftyone-js-plugin-build makes.
 *
 * - LabelNoiseReviewKeys: keyboard shortcuts of the review mode. Python
 *   panels have no key events, so this component (mounted only while a
 *   review or audit is shown) listens to keydown on the window and sends
 *   the key to the panel's Python event (schema.view.on_key) with the id of
 *   the item on screen; Python decides what the key does. Keys typed into
 *   inputs, with modifiers, or while the sample modal is open are ignored;
 *   one event at a time (a repeated key waits for the previous verdict).
 * - LabelNoiseImage: the item under review, large: the image scaled to a
 *   height, pixel art kept sharp, and for an object its box drawn on the
 *   image plus the box cropped and enlarged beside it.
 */
(function (g) {
  "use strict";
  var React = g.React;
  var fop = g.__fop__;
  var foo = g.__foo__;
  if (!React || !fop || !foo || !fop.registerComponent) {
    if (g.console) g.console.warn("[label-noise] FiftyOne App globals missing; panel keys disabled");
    return;
  }
  var h = React.createElement;

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function ReviewKeys(props) {
    var view = (props.schema && props.schema.view) || {};
    var useTrigger = foo.useTriggerPanelEvent;
    var trigger = useTrigger ? useTrigger() : null;
    var latest = React.useRef({});
    latest.current = { view: view, trigger: trigger };
    var busy = React.useRef(false);
    var _s = React.useState(0);
    var sent = _s[0];
    var setSent = _s[1];

    React.useEffect(function () {
      function onKey(e) {
        if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
        var v = latest.current.view || {};
        var key = e.key && e.key.length === 1 ? e.key.toLowerCase() : e.key;
        if (!v.on_key || (v.keys || []).indexOf(key) < 0) return;
        if (g.document.querySelector('[data-cy="modal"]')) return;
        e.preventDefault();
        e.stopPropagation();
        if (busy.current || !latest.current.trigger) return;
        busy.current = true;
        var release = g.setTimeout(function () { busy.current = false; }, 10000);
        latest.current.trigger(v.on_key, { key: key, item_id: v.item_id || null }, false, function () {
          g.clearTimeout(release);
          busy.current = false;
          setSent(function (n) { return n + 1; });
        });
      }
      g.addEventListener("keydown", onKey);
      return function () { g.removeEventListener("keydown", onKey); };
    }, []);

    return h(
      "div",
      { "data-cy": "label-noise-keys", "data-sent": sent, style: { fontSize: 12, opacity: 0.75, padding: "2px 0" } },
      trigger ? view.hint || "" : "Keyboard shortcuts need a FiftyOne App with useTriggerPanelEvent; use the buttons"
    );
  }

  function mediaUrl(filepath) {
    if (!filepath) return null;
    var fos = g.__fos__ || {};
    var fou = g.__fou__ || {};
    var get = fos.getSampleSrc || fou.getSampleSrc;
    if (get) {
      try { return get(filepath); } catch (err) { /* fall through */ }
    }
    return "/media?filepath=" + encodeURIComponent(filepath);
  }

  function ReviewImage(props) {
    var view = (props.schema && props.schema.view) || {};
    var height = view.image_height || 300;
    var box = view.box;
    var src = mediaUrl(view.filepath);
    var _n = React.useState(null);
    var natural = _n[0];
    var setNatural = _n[1];
    if (!src) return h("div", null, "no image");
    var onLoad = function (e) {
      setNatural({ w: e.target.naturalWidth, h: e.target.naturalHeight });
    };
    var scale = natural ? height / natural.h : 1;
    var sharp = natural && scale >= 3 ? "pixelated" : "auto";
    var frameHeight = box ? Math.round(height * 0.55) : height;
    var frame = h(
      "div",
      { style: { position: "relative", display: "inline-block", lineHeight: 0 } },
      h("img", {
        src: src, alt: view.alt || "item under review", onLoad: onLoad, "data-cy": "label-noise-image",
        style: { height: frameHeight, width: "auto", maxWidth: "100%", imageRendering: sharp, borderRadius: 4 },
      }),
      box
        ? h("div", {
            style: {
              position: "absolute", left: 100 * box[0] + "%", top: 100 * box[1] + "%",
              width: 100 * box[2] + "%", height: 100 * box[3] + "%",
              border: "2px solid #FF6D04", boxSizing: "border-box",
            },
          })
        : null
    );
    if (!box || !natural) return h("div", { style: { textAlign: "center" } }, frame);
    // the object itself, enlarged: the box region as a background crop
    var bw = Math.max(box[2], 1e-6), bh = Math.max(box[3], 1e-6);
    var aspect = (bw * natural.w) / (bh * natural.h);
    var cropH = height, cropW = Math.round(height * aspect);
    var crop = h("div", {
      "data-cy": "label-noise-crop",
      style: {
        width: cropW, height: cropH, maxWidth: "100%", borderRadius: 4,
        backgroundImage: "url(" + JSON.stringify(src) + ")",
        backgroundSize: 100 / bw + "% " + 100 / bh + "%",
        backgroundPosition: (bw < 1 ? (100 * box[0]) / (1 - bw) : 0) + "% " + (bh < 1 ? (100 * box[1]) / (1 - bh) : 0) + "%",
        imageRendering: sharp, border: "1px solid #FF6D04",
      },
    });
    return h("div", { style: { display: "flex", gap: 12, alignItems: "flex-start", flexWrap: "wrap" } }, crop, frame);
  }

  var Component = fop.PluginComponentType ? fop.PluginComponentType.Component : 3;
  fop.registerComponent({
    name: "LabelNoiseReviewKeys", label: "LabelNoiseReviewKeys", component: ReviewKeys,
    type: Component, activator: function () { return true; },
  });
  fop.registerComponent({
    name: "LabelNoiseImage", label: "LabelNoiseImage", component: ReviewImage,
    type: Component, activator: function () { return true; },
  });
})(typeof globalThis !== "undefined" ? globalThis : window);
