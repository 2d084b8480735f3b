#!/usr/bin/env python3
"""Writes kubesim's protobuf field table from the Go types of k8s.io/api and apimachinery.

The types' struct tags hold everything the decoder needs: the protobuf field number and wire
kind, the JSON name, `omitempty`, `inline`, and the Go type (pointer, slice, map, nested
struct). Run with checkouts of kubernetes/api and kubernetes/apimachinery at the release that
matches the kubectl we test against:

    tools/proto_table.py API_DIR APIMACHINERY_DIR > src/protobuf/fields.tsv

Lines: `K apiVersion kind message` for every top-level kind, `M message` then its fields as
`F number jsonName type flags` (type: str int float bool bytes time microtime duration quantity
intorstr rawext fieldsv1 msg:NAME map:TYPE; flags: p=pointer r=repeated o=omitempty i=inline).
"""
import os
import re
import sys

API_PACKAGES = {
    # package dir: apiVersion prefix (group/version)
    "core/v1": "v1",
    "apps/v1": "apps/v1",
    "batch/v1": "batch/v1",
    "rbac/v1": "rbac.authorization.k8s.io/v1",
    "networking/v1": "networking.k8s.io/v1",
    "policy/v1": "policy/v1",
    "scheduling/v1": "scheduling.k8s.io/v1",
    "autoscaling/v1": "autoscaling/v1",
    "autoscaling/v2": "autoscaling/v2",
    "coordination/v1": "coordination.k8s.io/v1",
    "storage/v1": "storage.k8s.io/v1",
    "discovery/v1": "discovery.k8s.io/v1",
    "authorization/v1": "authorization.k8s.io/v1",
    "authentication/v1": "authentication.k8s.io/v1",
}
SPECIAL = {
    "meta/v1.Time": "time",
    "meta/v1.MicroTime": "microtime",
    "meta/v1.Duration": "duration",
    "meta/v1.FieldsV1": "fieldsv1",
    "resource.Quantity": "quantity",
    "intstr.IntOrString": "intorstr",
    "runtime.RawExtension": "rawext",
    "types.UID": "str",
}
SCALARS = {
    "string": "str", "bool": "bool", "int": "int", "int32": "int", "int64": "int",
    "uint32": "int", "uint64": "int", "float32": "float", "float64": "float",
}
IMPORT_TO_PKG = {
    "k8s.io/apimachinery/pkg/apis/meta/v1": "meta/v1",
    "k8s.io/apimachinery/pkg/api/resource": "resource",
    "k8s.io/apimachinery/pkg/util/intstr": "intstr",
    "k8s.io/apimachinery/pkg/runtime": "runtime",
    "k8s.io/apimachinery/pkg/types": "types",
}
for d in API_PACKAGES:
    IMPORT_TO_PKG["k8s.io/api/" + d] = d

FIELD = re.compile(r'^\s*(?:(\w+)\s+)?([\*\[\]\w\.]+)\s+`([^`]*)`')
TAG = re.compile(r'(\w+):"([^"]*)"')


def imports(src):
    aliases = {}
    block = re.search(r'^import \((.*?)^\)', src, re.S | re.M)
    lines = block.group(1).splitlines() if block else re.findall(r'^import (.*)$', src, re.M)
    for line in lines:
        m = re.match(r'\s*(\w+)?\s*"([^"]+)"', line)
        if m:
            path = m.group(2)
            aliases[m.group(1) or path.rsplit("/", 1)[-1]] = IMPORT_TO_PKG.get(path, path)
    return aliases


def parse_package(pkg, sources):
    """Struct fields and named non-struct types of one Go package."""
    structs, named = {}, {}
    for src in sources:
        aliases = imports(src)
        for m in re.finditer(r'^type (\w+) struct \{\n(.*?)^\}', src, re.S | re.M):
            fields = []
            for line in m.group(2).splitlines():
                f = FIELD.match(line)
                if not f:
                    continue
                tags = dict(TAG.findall(f.group(3)))
                if "protobuf" not in tags or tags["protobuf"] == "-":
                    continue
                fields.append((f.group(1), f.group(2), tags, aliases))
            structs[m.group(1)] = fields
        for m in re.finditer(r'^type (\w+) =?\s*([\w\.\[\]\*]+(?:\[[\w\.]+\][\w\.]+)?)\s*$', src, re.M):
            named[m.group(1)] = (m.group(2), aliases)
    return structs, named


def main():
    api_dir, machinery_dir = sys.argv[1], sys.argv[2]
    packages = {}
    for pkg in API_PACKAGES:
        d = os.path.join(api_dir, pkg)
        packages[pkg] = parse_package(pkg, [open(os.path.join(d, "types.go")).read()])
    meta = os.path.join(machinery_dir, "pkg/apis/meta/v1")
    packages["meta/v1"] = parse_package("meta/v1", [open(os.path.join(meta, "types.go")).read()])

    def resolve(pkg, gotype, aliases):
        """(type, repeated) of a Go type named in package pkg."""
        if gotype.startswith("*"):
            return resolve(pkg, gotype[1:], aliases)
        if gotype == "[]byte":
            return "bytes", False
        if gotype.startswith("[]"):
            inner, _ = resolve(pkg, gotype[2:], aliases)
            return inner, True
        if gotype.startswith("map["):
            value = gotype[gotype.index("]") + 1:]
            inner, _ = resolve(pkg, value, aliases)
            return "map:" + inner, False
        if gotype in SCALARS:
            return SCALARS[gotype], False
        if "." in gotype:
            alias, name = gotype.split(".", 1)
            target = aliases.get(alias, alias)
        else:
            target, name = pkg, gotype
        qualified = f"{target}.{name}"
        if qualified in SPECIAL:
            return SPECIAL[qualified], False
        structs, named = packages.get(target, ({}, {}))
        if name in structs:
            return "msg:" + qualified, False
        if name in named:
            underlying, their_aliases = named[name]
            return resolve(target, underlying, their_aliases)
        raise SystemExit(f"unknown Go type {gotype} in {pkg}")

    out = []
    for pkg, (structs, _) in sorted(packages.items()):
        for name, fields in sorted(structs.items()):
            if pkg in API_PACKAGES and any(f[0] is None and f[1] == "metav1.TypeMeta" for f in []):
                pass
            out.append(f"M\t{pkg}.{name}")
            for field_name, gotype, tags, aliases in fields:
                proto = tags["protobuf"].split(",")
                number = proto[1]
                json_tag = tags.get("json", "").split(",")
                flags = ""
                if gotype.startswith("*"):
                    flags += "p"
                kind, repeated = resolve(pkg, gotype, aliases)
                if repeated:
                    flags += "r"
                if "omitempty" in json_tag[1:]:
                    flags += "o"
                if "inline" in json_tag[1:]:
                    flags += "i"
                json_name = json_tag[0] or "-"
                out.append(f"F\t{number}\t{json_name}\t{kind}\t{flags or '-'}")
    kinds = []
    for pkg, version in sorted(API_PACKAGES.items()):
        d = os.path.join(api_dir, pkg)
        src = open(os.path.join(d, "types.go")).read()
        for m in re.finditer(r'^type (\w+) struct \{\n(.*?)^\}', src, re.S | re.M):
            if re.search(r'^\s*metav1\.TypeMeta\s', m.group(2), re.M):
                kinds.append(f"K\t{version}\t{m.group(1)}\t{pkg}.{m.group(1)}")
    print("\n".join(kinds + out))


main()
