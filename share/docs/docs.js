/* docs.js - renders /openapi.json as a readable page: operations grouped by
 * tag with their security, parameters, request bodies and responses, then
 * the schemas and security schemes. Plain DOM, no libraries, no network
 * beyond this server. Text from the document is only ever set as text, never
 * as HTML, except for `code` spans built here. */
(function () {
  "use strict";

  var METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  var doc = null;

  /* h("div", {class: "x"}, child, "text", ...): an element with attributes
   * and children (strings become text nodes, null and false are skipped). */
  function h(tag, attrs) {
    var el = document.createElement(tag), i, k, c;
    for (k in attrs || {}) {
      if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) {
        el.setAttribute(k, attrs[k] === true ? "" : String(attrs[k]));
      }
    }
    for (i = 2; i < arguments.length; i++) {
      c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) {
        c.forEach(function (x) { if (x) el.appendChild(typeof x === "string" ? document.createTextNode(x) : x); });
      } else {
        el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
      }
    }
    return el;
  }

  /* Text with `code` spans and blank-line paragraphs, as the document's
   * descriptions are written (a small subset of CommonMark). */
  function prose(text, tag) {
    var out = h("div", {class: "prose"});
    String(text || "").split(/\n\s*\n/).forEach(function (para) {
      var p = h(tag || "p", null);
      para.split(/(`[^`]*`)/).forEach(function (part) {
        if (/^`[^`]*`$/.test(part)) p.appendChild(h("code", null, part.slice(1, -1)));
        else if (part) p.appendChild(document.createTextNode(part));
      });
      out.appendChild(p);
    });
    return out;
  }

  /* The object a local reference (#/components/...) points to. */
  function deref(ref) {
    var parts = ref.replace(/^#\//, "").split("/"), node = doc, i;
    for (i = 0; i < parts.length && node; i++) {
      node = node[parts[i].replace(/~1/g, "/").replace(/~0/g, "~")];
    }
    return node || {};
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  /* Follows $ref chains of parameters, responses and request bodies. */
  function resolve(obj) {
    var n = 0;
    while (obj && obj.$ref && n++ < 10) obj = deref(obj.$ref);
    return obj || {};
  }

  function anchor(kind, name) {
    return kind + "-" + String(name).replace(/[^A-Za-z0-9_-]/g, "-");
  }

  /* A short type label: "string", "string | null", "array of Campaign". */
  function typeLabel(s) {
    if (!s) return "any";
    if (s.$ref) return refName(s.$ref);
    if (s.oneOf || s.anyOf) {
      return "one of: " + (s.oneOf || s.anyOf).map(function (x) { return x.title || typeLabel(x); }).join(" | ");
    }
    if (s.allOf) return s.allOf.map(typeLabel).join(" & ");
    var t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
    if (t === "array") return "array of " + typeLabel(s.items);
    if (!t && s.properties) t = "object";
    if (!t && s["const"] !== undefined) t = typeof s["const"];
    return (t || "any") + (s.format ? " (" + s.format + ")" : "");
  }

  /* Constraints worth a reader's eye, as small tags. */
  function constraints(s) {
    var out = [];
    if (!s || s.$ref) return out;
    if (s["enum"]) out.push("one of " + s["enum"].map(function (x) { return JSON.stringify(x); }).join(", "));
    if (s["const"] !== undefined) out.push("always " + JSON.stringify(s["const"]));
    if (s.pattern) out.push("pattern " + s.pattern);
    if (s.minLength !== undefined) out.push("min length " + s.minLength);
    if (s.maxLength !== undefined) out.push("max length " + s.maxLength);
    if (s.minimum !== undefined) out.push(">= " + s.minimum);
    if (s.maximum !== undefined) out.push("<= " + s.maximum);
    if (s.minItems !== undefined) out.push("at least " + s.minItems + " items");
    if (s.minProperties !== undefined) out.push("at least " + s.minProperties + " field" + (s.minProperties > 1 ? "s" : ""));
    if (s["default"] !== undefined) out.push("default " + JSON.stringify(s["default"]));
    if (s.examples) out.push("e.g. " + s.examples.map(function (x) { return JSON.stringify(x); }).join(", "));
    return out.map(function (c) { return h("span", {class: "constraint"}, c); });
  }

  /* A schema as a tree: object properties in a table, arrays and
   * alternatives nested, references expanded once (then linked, so that
   * recursive schemas end). */
  function schemaView(s, seen, depth) {
    var box = h("div", {class: "schema"}), target, name;
    seen = seen || {};
    depth = depth || 0;
    if (!s) return box;
    if (s.$ref) {
      name = refName(s.$ref);
      box.appendChild(h("div", {class: "schema-name"},
        h("a", {href: "#" + anchor("schema", name)}, name)));
      if (seen[name] || depth > 6) return box;
      target = deref(s.$ref);
      var next = Object.assign({}, seen);
      next[name] = true;
      box.appendChild(schemaView(target, next, depth + 1));
      return box;
    }
    if (s.description && depth === 0) box.appendChild(prose(s.description));
    var alts = s.oneOf || s.anyOf;
    if (alts) {
      box.appendChild(h("div", {class: "schema-alt"}, s.oneOf ? "One of:" : "Any of:"));
      var list = h("ol", {class: "alternatives"});
      alts.forEach(function (a) {
        list.appendChild(h("li", null, a.$ref ? null : h("div", {class: "alt-title"}, a.title || typeLabel(a)),
          a.description && !a.$ref ? prose(a.description) : null, schemaView(a, seen, depth + 1)));
      });
      box.appendChild(list);
      return box;
    }
    if (s.allOf) {
      s.allOf.forEach(function (a) { box.appendChild(schemaView(a, seen, depth + 1)); });
      return box;
    }
    if (s.properties || s.patternProperties) {
      var req = s.required || [];
      var rows = Object.keys(s.properties || {}).map(function (k) {
        var p = s.properties[k], nested = null;
        var inner = p.$ref ? null : (p.type === "array" ? p.items : p);
        if (p.$ref || (inner && (inner.properties || inner.oneOf || inner.anyOf || (inner.$ref && depth < 6)))) {
          nested = schemaView(p.type === "array" ? p.items : p, seen, depth + 1);
        }
        return h("tr", null,
          h("td", {class: "prop"}, h("code", null, k), req.indexOf(k) >= 0 ? h("span", {class: "required", title: "required"}, "required") : null),
          h("td", {class: "type"}, typeLabel(p)),
          h("td", null, p.description && !p.$ref ? prose(p.description) : null, constraints(p), nested));
      });
      Object.keys(s.patternProperties || {}).forEach(function (k) {
        rows.push(h("tr", null, h("td", {class: "prop"}, h("code", null, "/" + k + "/")),
          h("td", {class: "type"}, typeLabel(s.patternProperties[k])), h("td", null, "keys matching this pattern")));
      });
      box.appendChild(h("table", {class: "props"},
        h("thead", null, h("tr", null, h("th", null, "field"), h("th", null, "type"), h("th", null, "about"))),
        h("tbody", null, rows)));
      if (s.additionalProperties === false) box.appendChild(h("div", {class: "note"}, "No other fields."));
      else if (s.additionalProperties && typeof s.additionalProperties === "object") {
        box.appendChild(h("div", {class: "note"}, "Other fields: " + typeLabel(s.additionalProperties) + "."));
      }
      return box;
    }
    if (s.type === "array") {
      box.appendChild(h("div", {class: "type"}, typeLabel(s)));
      if (s.items && (s.items.$ref || s.items.properties || s.items.oneOf || s.items.anyOf)) {
        box.appendChild(schemaView(s.items, seen, depth + 1));
      }
      box.appendChild(h("div", null, constraints(s)));
      return box;
    }
    box.appendChild(h("div", {class: "type"}, typeLabel(s), " ", constraints(s)));
    return box;
  }

  function example(value) {
    var text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    return h("details", {class: "example"}, h("summary", null, "Example"), h("pre", null, h("code", null, text)));
  }

  /* One media type of a body: its name, schema and example. */
  function contentView(content) {
    return Object.keys(content || {}).map(function (type) {
      var m = content[type] || {};
      return h("div", {class: "media"},
        h("div", {class: "media-type"}, h("code", null, type)),
        m.schema ? schemaView(m.schema) : null,
        m.example !== undefined ? example(m.example) : null);
    });
  }

  function securityView(sec) {
    if (!sec || sec.length === 0) return h("div", {class: "security public"}, "No authentication.");
    var names = sec.map(function (req) { return Object.keys(req); }).filter(function (n) { return n.length; });
    if (names.length === 0) return h("div", {class: "security public"}, "No authentication.");
    return h("div", {class: "security"}, "Authentication: ",
      names.map(function (group, i) {
        return h("span", null, i ? " or " : "", group.map(function (n) {
          return h("a", {class: "scheme", href: "#" + anchor("security", n)}, n);
        }));
      }));
  }

  function parametersView(params) {
    if (!params.length) return null;
    return h("div", {class: "block"}, h("h4", null, "Parameters"),
      h("table", {class: "props"},
        h("thead", null, h("tr", null, h("th", null, "name"), h("th", null, "in"), h("th", null, "type"), h("th", null, "about"))),
        h("tbody", null, params.map(function (p) {
          return h("tr", null,
            h("td", {class: "prop"}, h("code", null, p.name), p.required ? h("span", {class: "required"}, "required") : null),
            h("td", null, p["in"]),
            h("td", {class: "type"}, typeLabel(p.schema)),
            h("td", null, p.description ? prose(p.description) : null, constraints(p.schema)));
        }))));
  }

  function statusClass(code) {
    return "status s" + String(code).charAt(0);
  }

  function responsesView(responses) {
    return h("div", {class: "block"}, h("h4", null, "Responses"),
      Object.keys(responses || {}).map(function (code) {
        var r = resolve(responses[code]);
        var headers = Object.keys(r.headers || {});
        return h("div", {class: "response", "data-status": code},
          h("div", {class: "response-head"}, h("span", {class: statusClass(code)}, code), " ",
            prose(r.description || "", "span")),
          headers.length ? h("div", {class: "headers"}, "Headers: ", headers.map(function (n, i) {
            var hd = resolve(r.headers[n]);
            return h("span", {title: hd.description || ""}, i ? ", " : "", h("code", null, n));
          })) : null,
          contentView(r.content));
      }));
  }

  /* One operation: a collapsible section whose attributes name it. */
  function operationView(path, method, op, pathItem) {
    var params = (pathItem.parameters || []).concat(op.parameters || []).map(resolve);
    var security = op.security !== undefined ? op.security : doc.security;
    var body = op.requestBody ? resolve(op.requestBody) : null;
    var id = anchor("op", op.operationId || method + path);
    return h("details", {class: "op method-" + method, id: id, "data-method": method.toUpperCase(), "data-path": path},
      h("summary", null,
        h("span", {class: "method"}, method.toUpperCase()), " ",
        h("span", {class: "path"}, path), " ",
        h("span", {class: "summary"}, op.summary || ""),
        security && security.some(function (r) { return Object.keys(r).length; }) ? h("span", {class: "lock", title: "needs authentication"}, "auth") : null),
      h("div", {class: "op-body"},
        op.description ? prose(op.description) : null,
        securityView(security),
        parametersView(params),
        body ? h("div", {class: "block"}, h("h4", null, "Request body", body.required ? " (required)" : ""),
          body.description ? prose(body.description) : null, contentView(body.content)) : null,
        responsesView(op.responses)));
  }

  function render() {
    var app = document.getElementById("app");
    var tags = (doc.tags || []).slice();
    var known = {}, groups = {}, count = 0;
    tags.forEach(function (t) { known[t.name] = true; });
    Object.keys(doc.paths || {}).forEach(function (path) {
      var item = doc.paths[path];
      METHODS.forEach(function (m) {
        if (!item[m]) return;
        var tag = (item[m].tags && item[m].tags[0]) || "other";
        if (!known[tag]) { known[tag] = true; tags.push({name: tag}); }
        (groups[tag] = groups[tag] || []).push(operationView(path, m, item[m], item));
        count++;
      });
    });

    var nav = h("nav", {class: "toc"}, h("div", {class: "toc-title"}, "Contents"),
      tags.map(function (t) {
        return h("div", {class: "toc-group"}, h("a", {class: "toc-tag", href: "#" + anchor("tag", t.name)}, t.name),
          (groups[t.name] || []).map(function (el) {
            return h("a", {class: "toc-op", href: "#" + el.id},
              h("span", {class: "method mini method-" + el.getAttribute("data-method").toLowerCase()}, el.getAttribute("data-method")),
              " " + el.getAttribute("data-path"));
          }));
      }),
      h("a", {class: "toc-tag", href: "#schemas"}, "schemas"),
      h("a", {class: "toc-tag", href: "#security"}, "security schemes"));

    var info = doc.info || {};
    var main = h("main", null,
      h("header", null,
        h("h1", null, info.title || "API", " ", h("span", {class: "version"}, info.version || "")),
        info.summary ? h("p", {class: "lead"}, info.summary) : null,
        info.description ? prose(info.description) : null,
        h("p", {class: "meta"}, "OpenAPI " + (doc.openapi || "?") + " \u00b7 ",
          h("a", {href: "/openapi.json"}, "/openapi.json"), " \u00b7 ",
          h("button", {type: "button", id: "expand"}, "expand all"), " ",
          h("button", {type: "button", id: "collapse"}, "collapse all"))),
      tags.map(function (t) {
        return h("section", {class: "tag", id: anchor("tag", t.name)},
          h("h2", null, t.name), t.description ? prose(t.description) : null, groups[t.name] || []);
      }),
      h("section", {id: "schemas", class: "tag"}, h("h2", null, "Schemas"),
        Object.keys((doc.components || {}).schemas || {}).map(function (name) {
          var s = doc.components.schemas[name];
          return h("details", {class: "schema-def", id: anchor("schema", name)},
            h("summary", null, h("code", null, name), " ", h("span", {class: "summary"}, typeLabel(s))),
            schemaView(s, (function () { var o = {}; o[name] = true; return o; })()));
        })),
      h("section", {id: "security", class: "tag"}, h("h2", null, "Security schemes"),
        Object.keys((doc.components || {}).securitySchemes || {}).map(function (name) {
          var s = doc.components.securitySchemes[name];
          var how = s.type === "http" ? "HTTP " + s.scheme + (s.bearerFormat ? " (" + s.bearerFormat + ")" : "")
            : s.type === "oauth2" ? "OAuth2 " + Object.keys(s.flows || {}).map(function (f) {
              return f + (s.flows[f].tokenUrl ? " flow, token at " + s.flows[f].tokenUrl : " flow");
            }).join(", ")
              : s.type;
          return h("div", {class: "scheme-def", id: anchor("security", name)},
            h("h3", null, name), h("div", {class: "type"}, how), s.description ? prose(s.description) : null);
        })));

    app.textContent = "";
    app.appendChild(nav);
    app.appendChild(main);
    document.getElementById("expand").addEventListener("click", function () {
      document.querySelectorAll("details.op").forEach(function (d) { d.open = true; });
    });
    document.getElementById("collapse").addEventListener("click", function () {
      document.querySelectorAll("details").forEach(function (d) { d.open = false; });
    });
    /* A link to an operation or a schema opens it. */
    function openTarget() {
      var el = location.hash && document.getElementById(location.hash.slice(1));
      if (el && el.tagName === "DETAILS") el.open = true;
    }
    window.addEventListener("hashchange", openTarget);
    openTarget();
    document.title = (info.title || "API") + " " + (info.version || "") + " \u2013 API";
    document.body.setAttribute("data-operations", String(count));
    document.body.setAttribute("data-state", "ready");
  }

  function fail(msg) {
    var app = document.getElementById("app");
    app.textContent = "";
    app.appendChild(h("p", {class: "notice error"}, "Could not show the API documentation: " + msg));
    document.body.setAttribute("data-state", "error");
  }

  fetch("/openapi.json", {headers: {Accept: "application/json"}})
    .then(function (r) {
      if (!r.ok) throw new Error("/openapi.json answered " + r.status);
      return r.json();
    })
    .then(function (d) {
      doc = d;
      render();
    })
    .catch(function (e) { fail(e && e.message ? e.message : String(e)); });
}());
