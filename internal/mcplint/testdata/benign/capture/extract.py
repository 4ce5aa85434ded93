# Extracts the Tool(...) descriptors of a python MCP server's source: model
# classes and enums are executed (mcp imports stubbed), each Tool call's
# keyword arguments evaluated.
import ast, json, sys, types, enum
src = open(sys.argv[1]).read()
tree = ast.parse(src)
ns = {"local_tz": "UTC"}
stub = types.ModuleType('stub')
class Any_:
    def __init__(self, *a, **k): pass
    def __getattr__(self, n): return Any_()
    def __call__(self, *a, **k): return Any_()
# exec imports and class/enum definitions only
body = []
for node in tree.body:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        mods = [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom) and node.module and (node.module.startswith(('pydantic', 'enum', 'typing', 'pathlib', 'datetime'))):
            body.append(node)
        elif isinstance(node, ast.Import) and all(m in ('enum', 'json', 'typing') for m in mods):
            body.append(node)
        else:
            for a in node.names:
                ns[a.asname or a.name.split('.')[0]] = Any_()
    elif isinstance(node, (ast.ClassDef, ast.Assign)):
        body.append(node)
mod = ast.Module(body=body, type_ignores=[])
for n in body:
    try:
        exec(compile(ast.Module(body=[n], type_ignores=[]), 'x', 'exec'), ns)
    except Exception as e:
        pass
tools = []
def tool(**kw):
    t = {}
    for k, v in kw.items():
        if isinstance(v, enum.Enum): v = v.value
        t[k] = v
    return t
ns['Tool'] = tool
ns['types'] = types.SimpleNamespace(Tool=tool)
for node in ast.walk(tree):
    if isinstance(node, ast.Call) and ((isinstance(node.func, ast.Name) and node.func.id == 'Tool') or (isinstance(node.func, ast.Attribute) and node.func.attr == 'Tool')):
        try:
            tools.append(eval(compile(ast.fix_missing_locations(ast.Expression(body=ast.Call(func=ast.Name(id='Tool', ctx=ast.Load()), args=[], keywords=node.keywords))), 'x', 'eval'), ns))
        except Exception as e:
            print('skip', ast.unparse(node)[:80], e, file=sys.stderr)
print(json.dumps({"tools": tools}, indent=2, default=str))
