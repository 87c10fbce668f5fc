#!/usr/bin/env node
// Offline validators for tests/packaging.bats, from the packages that
// package-lock.json pins (npm ci installs them; nothing is fetched at run
// time):
//
//   node check.js compose FILE       the compose-spec JSON schema (schema/), with ajv
//   node check.js k8s FILE...        each document against the Kubernetes
//                                    schemas of kubernetes-models (ajv-compiled
//                                    from the Kubernetes OpenAPI definitions)
//   node check.js dockerfile FILE    dockerfile-utils' linter
//   node check.js tojson FILE        the YAML documents as JSON, one a line
//                                    (merge keys resolved), for jq
//
// Each prints one line per problem, "FILE: where: what", and exits 1 when
// there is any, 2 on a usage error.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

function fail(msg) {
	console.error(msg);
	process.exit(2);
}

// yamlDocs FILE: the documents of a YAML file (merge keys resolved).
function yamlDocs(file) {
	const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { merge: true });
	const out = [];
	for (const d of docs) {
		if (d.errors.length) {
			for (const e of d.errors) console.log(`${file}: ${e.message}`);
			process.exitCode = 1;
			continue;
		}
		const v = d.toJS({ maxAliasCount: 100 });
		if (v !== null && v !== undefined) out.push(v);
	}
	return out;
}

function checkCompose(file) {
	const Ajv = require("ajv").default;
	const addFormats = require("ajv-formats");
	const schema = JSON.parse(fs.readFileSync(path.join(__dirname, "schema/compose-spec.json"), "utf8"));
	// strict off: the schema uses annotations ajv does not know ("deprecated")
	const ajv = new Ajv({ allErrors: true, strict: false });
	addFormats(ajv);
	for (const f of ["duration", "ports", "expose", "subnet_ip_address"]) ajv.addFormat(f, true);
	// "https://json-schema.org/draft-07/schema" is ajv's draft-07 meta-schema
	// spelt with https: compile it as that.
	if (!/draft-07/.test(schema.$schema || "")) fail("schema/compose-spec.json: not a draft-07 schema");
	delete schema.$schema;
	const validate = ajv.compile(schema);
	const docs = yamlDocs(file);
	if (docs.length !== 1) {
		console.log(`${file}: expected one YAML document, found ${docs.length}`);
		process.exitCode = 1;
		return;
	}
	// Compose drops the x- extension fields before validating.
	if (!validate(docs[0])) {
		for (const e of validate.errors)
			console.log(`${file}: ${e.instancePath || "/"}: ${e.message} ${JSON.stringify(e.params)}`);
		process.exitCode = 1;
		return;
	}
	console.log(`${file}: valid compose file, services: ${Object.keys(docs[0].services).join(" ")}`);
}

// k8sModel apiVersion kind: the kubernetes-models class for them, or null.
function k8sModel(apiVersion, kind) {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
	const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
	try {
		const m = require(mod);
		return m[kind] || null;
	} catch (e) {
		return null;
	}
}

function checkK8s(files) {
	for (const file of files) {
		const docs = yamlDocs(file);
		if (docs.length === 0) {
			console.log(`${file}: no documents`);
			process.exitCode = 1;
		}
		for (const doc of docs) {
			const where = `${file}: ${doc.kind || "?"}/${(doc.metadata && doc.metadata.name) || "?"}`;
			if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
				console.log(`${where}: no apiVersion or kind`);
				process.exitCode = 1;
				continue;
			}
			const Model = k8sModel(doc.apiVersion, doc.kind);
			if (!Model) {
				console.log(`${where}: unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`);
				process.exitCode = 1;
				continue;
			}
			try {
				new Model(doc).validate();
				console.log(`${where}: valid ${doc.apiVersion} ${doc.kind}`);
			} catch (e) {
				const errs = e.errors || [{ instancePath: "", message: e.message }];
				for (const x of errs) console.log(`${where}: ${x.instancePath || "/"}: ${x.message}`);
				process.exitCode = 1;
			}
		}
	}
}

function checkDockerfile(file) {
	const { validate } = require("dockerfile-utils");
	const text = fs.readFileSync(file, "utf8");
	const diags = validate(text, {});
	for (const d of diags)
		console.log(`${file}:${d.range.start.line + 1}: ${d.severity === 1 ? "error" : "warning"}: ${d.message}`);
	if (diags.length) process.exitCode = 1;
	else console.log(`${file}: no problems`);
}

const [cmd, ...args] = process.argv.slice(2);
if (!cmd || args.length === 0) fail("usage: check.js compose|k8s|dockerfile|tojson FILE...");
switch (cmd) {
	case "compose":
		checkCompose(args[0]);
		break;
	case "k8s":
		checkK8s(args);
		break;
	case "dockerfile":
		checkDockerfile(args[0]);
		break;
	case "tojson":
		for (const f of args) for (const d of yamlDocs(f)) console.log(JSON.stringify(d));
		break;
	default:
		fail(`check.js: unknown check '${cmd}'`);
}
