#!/usr/bin/env python3
"""
Routes cross-folder imports through the folders' index files.

Each folder of the source tree that has an `index.ts` is one layer, and other folders import it
only through that file. This script rewrites every relative import or re-export in `runtime/`,
`actors/`, `entities/` and `placement/` whose target lies in another layer folder so that it
names that folder's `index.ts`; imports within a folder, and imports of a file in an enclosing
folder (e.g. `actors/wire/messages.ts` -> `../errors.ts`), stay relative to the file. Imports that
end up naming the same index in one file are merged into one statement. Tests, benchmarks and
examples are left alone: they may import a module under test by its path.

It then checks that every name imported through an index is exported by it, and lists the ones
that are not (exit status 1), so that after a merge the lead can re-run it and add the missing
exports by hand (explicit named exports, no `export *`).

Usage (from the repository root):
    python3 test/tooling/route-imports.py           # dry run: what would change, missing exports
    python3 test/tooling/route-imports.py --write   # rewrite the files, then run prettier on them
    python3 test/tooling/route-imports.py --needs   # per index: the names other folders use
"""
import os
import re
import sys

ROOTS = ['runtime', 'actors', 'entities', 'placement']

# `import ... from '...'` / `export ... from '...'`, possibly over several lines. Group 1: the
# keyword, 2: `type ` when the whole statement is type-only, 3: the clause, 4: the specifier.
STATEMENT = re.compile(
    r"^(import|export)\s+(type\s+)?(\{[^}]*\}|\*\s+as\s+\w+|\*|\w+(?:\s*,\s*\{[^}]*\})?)\s+from\s+'([^']+)'\n?",
    re.M,
)


def source_files():
    for root in ROOTS:
        for d, _, files in os.walk(root):
            for f in files:
                if f.endswith('.ts') and not f.endswith('.d.ts'):
                    yield os.path.normpath(os.path.join(d, f))


def layer_of(path, layers):
    """The deepest folder with an index.ts that contains `path`."""
    d = os.path.dirname(path)
    while d and d not in layers:
        d = os.path.dirname(d)
    return d or None


def inside(folder, ancestor):
    return folder == ancestor or folder.startswith(ancestor + '/')


def specifiers(clause):
    """Named specifiers of a `{ ... }` clause, as written (`type A`, `b as c`)."""
    m = re.search(r'\{([^}]*)\}', clause)
    if not m:
        return None
    return [s.strip() for s in m.group(1).split(',') if s.strip()]


def imported_name(spec):
    """The name a specifier takes from the module: `type A as B` -> A."""
    s = re.sub(r'^type\s+', '', spec)
    return s.split(' as ')[0].strip()


def exported_names(index_path):
    """Names an index file exports: re-exports (`{ a, type B, c as d }`) and its own declarations."""
    text = open(index_path).read()
    names = set()
    for m in re.finditer(r'^export\s+(?:type\s+)?\{([^}]*)\}', text, re.M):
        for s in m.group(1).split(','):
            s = re.sub(r'^type\s+', '', s.strip())
            if s:
                names.add(s.split(' as ')[-1].strip())
    for m in re.finditer(
        r'^export\s+(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:const|let|function\*?|class|interface|type|enum)\s+(\w+)',
        text,
        re.M,
    ):
        names.add(m.group(1))
    return names


def route(path, text, layers):
    """The file's text with cross-folder imports routed, and the (index, name) pairs it imports."""
    here = os.path.dirname(path)
    used = []
    statements = []  # (start, end, keyword, type_only, clause, new_spec)
    for m in STATEMENT.finditer(text):
        keyword, type_only, clause, spec = m.group(1), bool(m.group(2)), m.group(3), m.group(4)
        if not spec.startswith('.'):
            statements.append((m.start(), m.end(), keyword, type_only, clause, spec, False))
            continue
        target = os.path.normpath(os.path.join(here, spec))
        layer = layer_of(target, layers)
        if layer is None or inside(here, layer):
            statements.append((m.start(), m.end(), keyword, type_only, clause, spec, False))
            continue
        index = os.path.join(layer, 'index.ts')
        new_spec = os.path.relpath(index, here)
        if not new_spec.startswith('.'):
            new_spec = './' + new_spec
        for s in specifiers(clause) or []:
            used.append((index, imported_name(s)))
        statements.append((m.start(), m.end(), keyword, type_only, clause, new_spec, new_spec != spec))

    # Merge named statements that now name the same index (same keyword), at the first one's place.
    groups = {}
    for st in statements:
        start, end, keyword, type_only, clause, spec, _ = st
        if specifiers(clause) is not None and '{' in clause and clause.strip().startswith('{'):
            groups.setdefault((keyword, spec), []).append(st)
    out = text
    edits = []  # (start, end, replacement)
    for (keyword, spec), sts in groups.items():
        if not any(st[6] for st in sts):
            continue  # nothing rerouted here: leave the statements as written
        if len(sts) == 1:
            start, end, _, type_only, clause, _, _ = sts[0]
            edits.append((start, end, render(keyword, type_only, specifiers(clause), spec)))
            continue
        all_type = all(st[3] for st in sts)
        merged = []
        for _, _, _, type_only, clause, _, _ in sts:
            for s in specifiers(clause):
                s = s if (all_type or not type_only or s.startswith('type ')) else 'type ' + s
                if all_type:
                    s = re.sub(r'^type\s+', '', s)
                if s not in merged:
                    merged.append(s)
        first = sts[0]
        edits.append((first[0], first[1], render(keyword, all_type, merged, spec)))
        for st in sts[1:]:
            edits.append((st[0], st[1], ''))
    for st in statements:
        start, end, keyword, type_only, clause, spec, changed = st
        if changed and not (clause.strip().startswith('{')):
            edits.append((start, end, f"{keyword} {'type ' if type_only else ''}{clause} from '{spec}'\n"))
    for start, end, rep in sorted(edits, reverse=True):
        out = out[:start] + rep + out[end:]
    return out, used


def render(keyword, type_only, specs, spec):
    return f"{keyword} {'type ' if type_only else ''}{{ {', '.join(specs)} }} from '{spec}'\n"


def main():
    write = '--write' in sys.argv
    needs = '--needs' in sys.argv
    files = sorted(source_files())
    layers = {os.path.dirname(f) for f in files if os.path.basename(f) == 'index.ts'}
    changed, used = [], []
    for path in files:
        text = open(path).read()
        new, u = route(path, text, layers)
        used += u
        if new != text:
            changed.append(path)
            if write:
                open(path, 'w').write(new)
    by_index = {}
    for index, name in used:
        by_index.setdefault(index, set()).add(name)
    if needs:
        for index in sorted(by_index):
            print(f'{index}: {", ".join(sorted(by_index[index]))}')
    missing = []
    for index in sorted(by_index):
        exported = exported_names(index)
        missing += [(index, n) for n in sorted(by_index[index] - exported)]
    print(f"{'rewrote' if write else 'would rewrite'} {len(changed)} files" + (':' if changed else ''))
    for c in changed:
        print('  ' + c)
    if missing:
        print(f'{len(missing)} names are imported through an index that does not export them:')
        for index, n in missing:
            print(f'  {index}: {n}')
        sys.exit(1)


if __name__ == '__main__':
    main()
