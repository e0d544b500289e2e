"""docs/troubleshooting.md documents every error message a user of the collection can see.

The messages are read from the code, not listed by hand, so a new error without documentation
fails here:

- Python (``plugins/``, and ``lab/dirsync_lab`` for the lab's own errors): every construction of
  one of the collection's error classes (``DirsyncError`` and its subclasses, ``LabError``),
  raised or returned; the message templates fixed in a subclass's ``__init__``; the text passed
  to helper functions that build errors (``_refuse(path, reason, hint)``); ``fail_json(msg=...)``
  and ``msg=`` of failed action results; and the hints appended to errors (``*_HINT``/``*_HINTS``
  constants and ``*hint*`` functions).
- YAML (``roles/``, ``playbooks/``): ``msg`` of ``fail`` tasks and ``fail_msg``/``msg`` of
  ``assert`` tasks.

A message's searchable text is its first literal part of at least three words (the text before
the first interpolated value, or after it when the message starts with a value), up to 80
characters. Messages without such a part must have all their literal parts, in order, on one
line of the doc. A message whose text cannot be read from the code at all fails the test too.
"""

import ast
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "troubleshooting.md")
MARK = "\x00"  # stands for an interpolated value
REPORT = "\x01"  # the message of a caught error, documented where that error is raised
BASE_ERRORS = {"DirsyncError", "LabError"}
PYTHON_TREES = ("plugins", os.path.join("lab", "dirsync_lab"))
YAML_TREES = ("roles", "playbooks")
# Functions outside the collection whose result is a message the user sees, with that message's fixed text.
EXTERNAL_MESSAGES = {"missing_required_lib": "Failed to import the required Python library"}
# Functions that only transform a message they are given (first argument), e.g. removing secrets from it.
PASS_THROUGH = {"_scrub"}
# String methods that keep the text recognisable.
STR_METHODS = {"strip", "rstrip", "lstrip"}
KEY_WORDS = 3
KEY_CHARS = 80
PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[sdrifgexXc]")
FORMAT = re.compile(r"\{[^{}]*\}")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def _python_files():
    for tree in PYTHON_TREES:
        for base, _dirs, names in os.walk(os.path.join(ROOT, tree)):
            for name in sorted(names):
                if name.endswith(".py"):
                    yield os.path.join(base, name)


def _name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_function(node):
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))


class Source:
    """One parsed Python file, and the texts its string expressions can take."""

    def __init__(self, path):
        self.path = path
        self.module = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as handle:
            self.tree = ast.parse(handle.read(), path)
        self.parents = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        self.errors = set()
        self._stored = None
        # Name bound by ``from package.module import name`` -> the stem of the module it was imported from, and the
        # stem of the module itself when ``name`` is a module (``from ...module_utils import _phone``).
        self.imported = {}
        self.modules = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = node.module.rsplit(".", 1)[-1]
                    self.modules[alias.asname or alias.name] = alias.name

    def where(self, node):
        return "%s:%d" % (os.path.relpath(self.path, ROOT), node.lineno)

    def function(self, node):
        while node in self.parents:
            node = self.parents[node]
            if _is_function(node):
                return node
        return None

    def caught(self, node):
        """Names bound by ``except <error class> as name`` around ``node``."""
        bound = set()
        while node in self.parents:
            node = self.parents[node]
            for handler in getattr(node, "handlers", []):
                types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                if handler.name and any(_name(t) in self.errors for t in types):
                    bound.add(handler.name)
        return bound

    def _assigned(self, name, node):
        """Values assigned to ``name`` in the function around ``node``, else at module level."""
        scope = self.function(node)
        for nodes in ((ast.walk(scope),) if scope is not None else ()) + (self.tree.body,):
            values = [item.value for item in nodes
                      if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in item.targets)]
            if values:
                return values
        return []

    def _keyed(self, key):
        """Values stored under the dict key ``key`` anywhere in the file (``x[key] = v`` or ``{key: v}``)."""
        if self._stored is None:
            self._stored = {}
            for node in ast.walk(self.tree):
                pairs = []
                if isinstance(node, ast.Assign):
                    pairs = [(t.slice.value, node.value) for t in node.targets if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant)]
                elif isinstance(node, ast.Dict):
                    pairs = [(k.value, v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)]
                for name, value in pairs:
                    self._stored.setdefault(name, []).append(value)
        return self._stored.get(key, [])

    def templates(self, node, parts=None, depth=0):
        """The texts ``node`` can produce: MARK where a value is interpolated, REPORT for a caught error's message.

        Texts interpolated into a message with ``%`` (hints, fixed sentences) are also added to ``parts``.
        """
        if depth > 10:
            return [MARK]

        def again(child):
            return self.templates(child, parts, depth + 1)

        if isinstance(node, ast.Constant):
            return [node.value] if isinstance(node.value, str) else []
        if isinstance(node, ast.JoinedStr):
            return ["".join(v.value if isinstance(v, ast.Constant) else MARK for v in node.values)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            values = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            filled = [again(value) for value in values]
            if parts is not None:
                parts += [text for texts in filled for text in texts if _key(text)]
            results = []
            for text in again(node.left):
                found = PRINTF.findall(text)
                pieces = PRINTF.split(text)
                if len(found) != len(filled):
                    filled = [[MARK]] * len(found)
                # A value with one possible text (a constant sentence) is part of the message; others are values.
                values_text = [texts[0] if len(texts) == 1 else MARK for texts in filled]
                results.append("".join(piece + (values_text[i] if i < len(values_text) else "")
                                       for i, piece in enumerate(pieces)).replace("%%", "%"))
            return results
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [left + right for left in again(node.left) for right in again(node.right)][:20]
        if isinstance(node, ast.IfExp):
            return again(node.body) + again(node.orelse)
        if isinstance(node, ast.Name):
            if node.id in self.caught(node):
                return [REPORT]
            return [text for value in self._assigned(node.id, node) for text in again(value)] or [MARK]
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            return [text for value in self._keyed(node.slice.value) for text in again(value)] or [MARK]
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name == "format" and isinstance(node.func, ast.Attribute):
                return [FORMAT.sub(MARK, text) for text in again(node.func.value)]
            if name in EXTERNAL_MESSAGES:
                return [EXTERNAL_MESSAGES[name] + MARK]
            if name in PASS_THROUGH | {"str"} and node.args:
                return again(node.args[0])
            if name in STR_METHODS and isinstance(node.func, ast.Attribute):
                return again(node.func.value)
        return [MARK]


def _message_argument(call):
    if call.args:
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg in ("msg", "message")), None)


def _parameters(function):
    names = [a.arg for a in function.args.posonlyargs + function.args.args]
    offset = 1 if names[:1] in (["self"], ["cls"]) else 0
    return {name: index - offset for index, name in enumerate(names) if index >= offset}


class Messages:
    """Every message the Python code can show a user, as (location, text) pairs."""

    def __init__(self, paths):
        self.sources = [Source(path) for path in paths]
        classes = {node.name: (source, node) for source in self.sources for node in ast.walk(source.tree) if isinstance(node, ast.ClassDef)}
        self.errors = set(BASE_ERRORS)
        while True:
            more = {name for name, (_s, node) in classes.items() if any(_name(b) in self.errors for b in node.bases)} - self.errors
            if not more:
                break
            self.errors |= more
        for source in self.sources:
            source.errors = self.errors
        # Classes whose __init__ builds the message from a template (e.g. "<cmdlet> failed on ...").
        self.fixed = {}
        for name in self.errors & set(classes):
            source, node = classes[name]
            init = next((item for item in node.body if _is_function(item) and item.name == "__init__"), None)
            first = init.args.args[1].arg if init is not None and len(init.args.args) > 1 else None
            for call in ast.walk(init) if init is not None else ():
                if isinstance(call, ast.Call) and _name(call.func) == "__init__" and call.args \
                        and not (isinstance(call.args[0], ast.Name) and call.args[0].id == first):
                    self.fixed[name] = (source, call)
        # Functions that build an error from texts their callers give: (module, name) -> {parameter: position}.
        self.builders = {}
        for source in self.sources:
            for function in ast.walk(source.tree):
                if not _is_function(function) or function.name == "__init__":
                    continue
                parameters = _parameters(function)
                for call in self._constructions(function):
                    used = {n.id for n in ast.walk(_message_argument(call) or call) if isinstance(n, ast.Name)} & set(parameters)
                    if used:
                        self.builders.setdefault((source.module, function.name), {}).update({p: parameters[p] for p in used})
        self.found = []
        self.unreadable = []
        for name, (source, call) in sorted(self.fixed.items()):
            self._add(source, call, call.args[0])
        for source in self.sources:
            self._scan(source)

    def _constructions(self, function):
        """The error-class calls ``function`` raises or returns."""
        calls = []
        for node in ast.walk(function):
            value = node.value if isinstance(node, ast.Return) else node.exc if isinstance(node, ast.Raise) else None
            if isinstance(value, ast.Call) and _name(value.func) in self.errors:
                calls.append(value)
        return calls

    def _builder(self, source, func):
        """The parameters of the error-building helper called as ``func`` in ``source``: defined there, or imported."""
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in source.modules:
            return self.builders.get((source.modules[func.value.id], func.attr))
        name = _name(func)
        return self.builders.get((source.module, name)) or self.builders.get((source.imported.get(name), name))

    def _add(self, source, node, argument, builder_parameters=()):
        parts = []
        texts = source.templates(argument, parts)
        readable = [text for text in texts if _readable(text)]
        self.found += [(source.where(node), text) for text in readable + parts]
        if readable or parts or texts and all(text == REPORT for text in texts):
            return
        names = {n.id for n in ast.walk(argument) if isinstance(n, ast.Name)}
        if names and names <= set(builder_parameters):
            return  # the text comes from the callers of this helper, checked there
        self.unreadable.append(source.where(node))

    def _scan(self, source):
        for node in ast.walk(source.tree):
            if isinstance(node, ast.Call):
                name = _name(node.func)
                if name in self.errors and name not in self.fixed:
                    argument = _message_argument(node)
                    if argument is not None:
                        function = source.function(node)
                        self._add(source, node, argument, self.builders.get((source.module, function and function.name), ()))
                elif self._builder(source, node.func):
                    for parameter, position in self._builder(source, node.func).items():
                        given = [kw.value for kw in node.keywords if kw.arg == parameter]
                        given += node.args[position:position + 1]
                        for argument in given:
                            self.found += [(source.where(node), text) for text in source.templates(argument) if _key(text)]
                elif name == "fail_json" or name in ("update", "dict") and any(kw.arg == "failed" for kw in node.keywords):
                    argument = next((kw.value for kw in node.keywords if kw.arg == "msg"), None)
                    if argument is not None:
                        self._add(source, node, argument)
            elif isinstance(node, ast.Assign) and node in source.tree.body:
                if any(isinstance(t, ast.Name) and t.id.endswith(("_HINT", "_HINTS")) for t in node.targets):
                    values = node.value.values if isinstance(node.value, ast.Dict) else [node.value]
                    self.found += [(source.where(v), text) for v in values for text in source.templates(v)]
            elif _is_function(node) and "hint" in node.name.lower():
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        self.found += [(source.where(ret), text) for text in source.templates(ret.value) if _readable(text)]


def _tasks(items):
    for task in items or []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


def yaml_messages():
    """(location, template) of every fail/assert message in roles and playbooks."""
    found = []
    for tree in YAML_TREES:
        for base, _dirs, names in os.walk(os.path.join(ROOT, tree)):
            for name in sorted(names):
                if not name.endswith((".yml", ".yaml")) or os.path.basename(base) in ("meta", "defaults", "vars"):
                    continue
                path = os.path.join(base, name)
                with open(path, encoding="utf-8") as handle:
                    document = yaml.safe_load(handle)
                tasks = []
                for item in document if isinstance(document, list) else []:
                    if isinstance(item, dict) and "hosts" in item:
                        for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                            tasks += list(_tasks(item.get(key)))
                    else:
                        tasks += list(_tasks([item]))
                for task in tasks:
                    for action, keys in (("fail", ("msg",)), ("assert", ("fail_msg", "msg"))):
                        args = task.get("ansible.builtin." + action, task.get(action))
                        if isinstance(args, dict):
                            # Without a message Ansible says only "Failed as requested" / "Assertion failed": unreadable.
                            text = next((str(args[k]) for k in keys if k in args), MARK)
                            found.append(("%s (task %r)" % (os.path.relpath(path, ROOT), task.get("name")), JINJA.sub(MARK, text)))
    return found


def powershell_messages():
    """(location, template) of every ``FailJson("...")`` of the PowerShell modules (``$(...)`` and ``$name`` are values)."""
    found = []
    for base, _dirs, names in os.walk(os.path.join(ROOT, "plugins")):
        for name in sorted(names):
            if name.endswith(".ps1"):
                path = os.path.join(base, name)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                for match in re.finditer(r"FailJson\(((?:\s*\"(?:[^\"`]|`.)*\"\s*\+?)+)", text):
                    message = "".join(re.findall(r'"((?:[^"`]|`.)*)"', match.group(1)))
                    where = "%s:%d" % (os.path.relpath(path, ROOT), text.count("\n", 0, match.start()) + 1)
                    found.append((where, re.sub(r"\$\((?:[^()]|\([^()]*\))*\)|\$\w+", MARK, message)))
    return found


def _squash(text):
    return " ".join(text.split())


def _parts(template):
    return [_squash(part) for part in re.split("[%s%s]" % (MARK, REPORT), template)]


def _readable(template):
    return any(re.search("[A-Za-z]{2}", part) for part in _parts(template))


def _key(template):
    """The searchable text of a message: its first literal part of >= 3 words, cut at a word boundary."""
    for part in _parts(template):
        if len(part.split()) >= KEY_WORDS:
            return part if len(part) <= KEY_CHARS else part[:KEY_CHARS].rsplit(" ", 1)[0]
    return None


def _documented(template, doc):
    key = _key(template)
    if key:
        return key in doc
    # No part of three words: every literal part, in order, in one paragraph.
    pattern = re.compile(".*?".join(re.escape(part) for part in _parts(template) if re.search("[A-Za-z]{2}", part)))
    return any(pattern.search(line) for line in doc.splitlines())


def undocumented(messages, doc):
    """The messages whose searchable text ``doc`` (Markdown) does not contain, each with where it comes from."""
    squashed = "\n".join(_squash(paragraph) for paragraph in doc.split("\n\n"))
    return ["%s: %r" % (where, _key(text) or text.replace(MARK, "<value>")) for where, text in messages if not _documented(text, squashed)]


def _read_doc():
    with open(DOC, encoding="utf-8") as handle:
        return handle.read()


PYTHON = Messages(list(_python_files()))
YAML_MESSAGES = yaml_messages()
MESSAGES = sorted(set(PYTHON.found + powershell_messages() + [(where, text) for where, text in YAML_MESSAGES if _readable(text)]))


def test_the_extraction_finds_messages_of_every_kind():
    # Guards the extraction itself: if it found nothing, the other checks would pass vacuously.
    wheres = [where for where, _text in MESSAGES]
    for origin in ("plugins/modules/", "plugins/module_utils/_backup.py", "plugins/action/", "plugins/modules/entra_connect_cmdlet.ps1",
                   "roles/", "playbooks/", "lab/"):
        assert any(where.startswith(origin) for where in wheres), origin
    texts = [text for _where, text in MESSAGES]
    assert any(text.startswith("Sign-in to Microsoft Entra ID (auth_method=") for text in texts)  # auth_error_from_result
    assert any(text.startswith("it is not valid JSON") for text in texts)  # a reason given to the _refuse helper
    assert any(text.startswith("The object does not exist") for text in texts)  # a hint of _graph._hint


def test_every_message_can_be_read_from_the_code():
    unreadable = PYTHON.unreadable + [where for where, text in YAML_MESSAGES if not _readable(text)]
    assert not unreadable, "messages made only of values; give them fixed text a user can search for: %s" % unreadable


def test_every_error_message_is_in_troubleshooting():
    missing = undocumented(MESSAGES, _read_doc())
    assert not missing, "document these messages in docs/troubleshooting.md (cause and fix):\n" + "\n".join(missing)


def test_removing_an_entry_is_caught():
    doc = _read_doc()
    where, text = next((w, t) for w, t in MESSAGES if _key(t) and "Binding to" not in t)
    assert not undocumented([(where, text)], doc)
    assert undocumented([(where, text)], doc.replace(_key(text), "(removed)"))
    unkeyed = ("x", "Binding to \x00 as \x00 failed: \x00.")
    assert not undocumented([unkeyed], "`Binding to <dc> as <user> failed: <reason>`")
    assert undocumented([unkeyed], "`Binding to <dc> failed`")


def _doc_pages():
    return sorted(name for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md") and name != "README.md")


def test_every_docs_page_is_in_the_index():
    with open(os.path.join(ROOT, "docs", "README.md"), encoding="utf-8") as handle:
        linked = set(re.findall(r"\]\(([^)#]+)", handle.read()))
    assert [page for page in _doc_pages() if page not in linked] == []


def test_the_readme_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = re.search(r"^## Documentation\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, "README.md has no '## Documentation' section"
    linked = set(re.findall(r"\]\(docs/([^)#]+)", section.group(1)))
    assert [page for page in _doc_pages() + ["README.md"] if page not in linked] == []


NEW_CODE = """
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

SOMETHING_HINT = "Restart the frobnicator before you try again."


class FrobError(InvalidInput):
    pass


def _refuse_frob(name, reason):
    return FrobError("%s cannot be frobbed: %s" % (name, reason))


def work(module):
    if module.params["size"] < 1:
        raise InvalidInput("The frob size must be positive, got %d." % module.params["size"])
    raise _refuse_frob(module.params["name"], "the frobnicator is switched off today")
"""


def test_a_new_undocumented_error_is_found(tmp_path):
    new = tmp_path / "frob.py"
    new.write_text(NEW_CODE, encoding="utf-8")
    messages = Messages([os.path.join(ROOT, "plugins", "module_utils", "_errors.py"), str(new)])
    missing = undocumented([(w, t) for w, t in messages.found if "frob.py" in w], _read_doc())
    assert sorted(m.split(": ", 1)[1] for m in missing) == sorted([
        repr("The frob size must be positive, got"), repr("cannot be frobbed:"), repr("the frobnicator is switched off today"),
        repr("Restart the frobnicator before you try again.")])


@pytest.mark.parametrize("template, expected", [
    ("Cannot read the token cache \x00: \x00.", "Cannot read the token cache"),
    ("\x00 cannot be used: \x00 \x00 Nothing was changed.", "cannot be used:"),
    ("Port \x00 is taken by \x00; the lab needs it", "is taken by"),
    ("Binding to \x00 as \x00 failed: \x00.", None),
])
def test_key_is_the_first_literal_part_of_three_words(template, expected):
    assert _key(template) == expected
