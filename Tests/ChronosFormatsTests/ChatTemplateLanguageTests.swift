import ChronosFormats
import XCTest

/// The template language on its own: whitespace control, expressions and statements (each
/// expected string is what Python jinja2 renders in transformers' environment), and the errors
/// that name what is wrong and where.
final class ChatTemplateLanguageTests: XCTestCase {
    static let renderings: [(template: String, expected: String)] = [
        (
            "{% if true %}\n    yes\n{% endif %}\nend\n",
            "    yes\nend"
        ),
        (
            "  {% if true %}kept{% endif %}|{{ 'x' }}  \n  {{- 'y' -}}  \n z",
            "kept|xyz"
        ),
        (
            "a  {%- if true -%}  b  {%- endif -%}  c",
            "abc"
        ),
        (
            "line\n    {%+ if true %}x{% endif %}\n",
            "line\n    x"
        ),
        (
            "{# comment #}\n  {# indented #}\ntext",
            "text"
        ),
        (
            "{% for m in ['a', 'b', 'c'] if m != 'b' %}{{ loop.index }}{{ m }}{{ '/' if not loop.last }}{% else %}none{% endfor %}",
            "1a/2c"
        ),
        (
            "{% for x in [] %}x{% else %}empty{% endfor %}",
            "empty"
        ),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
            "6"
        ),
        (
            "{{ [1, 2, 3, 4][1:] }} {{ 'hello'[::-1] }} {{ {'b': 1, 'a': [1.5, none, true]} | tojson }} {{ 'ünï' | tojson }}",
            "[2, 3, 4] olleh {\"b\": 1, \"a\": [1.5, null, true]} \"ünï\""
        ),
        (
            "{{ {'a': {'b': [1, 2]}} | tojson(indent=2) }}",
            "{\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  }\n}"
        ),
        (
            "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'a' ~ 1 ~ none }} {{ 1 if x is defined else 2 }}",
            "3 -4 1 3.5 1024 a1None 2"
        ),
        (
            "{% for k, v in {'x': 1, 'y': 2} | items %}{{ k }}={{ v }};{% endfor %}{{ {'x': 1}.get('z', 'd') }}",
            "x=1;y=2;d"
        ),
        (
            "{{ '  a b  '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ 'Hello World'.lower().title() }}|{{ 'x' in 'xyz' }}|{{ 3 not in [1, 2] }}",
            "a b|['a', 'b', '', 'c']|Hello World|True|True"
        ),
        (
            "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', punct='?') }}",
            "Hi Ann! Hi Bo?"
        ),
        (
            "{{ [{'r': 'u'}, {'r': 'a'}, {'r': 'u'}] | selectattr('r', 'equalto', 'u') | list | length }} {{ ['a', 'b'] | join('-') | upper }}",
            "2 A-B"
        ),
        // A macro sees the top level as it is when called, not its caller's loop variables.
        (
            "{% set x = 1 %}{% macro m() %}{{ x }}[{{ item }}]{% endmacro %}{% set x = 2 %}{% for item in [1] %}{{ m() }}{% endfor %}",
            "2[]"
        ),
        // Defaults see the parameters before them; what a macro sets stays inside it.
        (
            "{% macro m(a, b=a ~ '!', c='y') %}{% set kept = 1 %}{{ a }}{{ b }}{{ c }}{% endmacro %}"
                + "{{ m('x') }} {{ m(c='z', a=1) }} {{ kept is defined }}",
            "xx!y 11!z False"
        ),
        (
            "{% macro m(a=b, b=2) %}[{{ a }}]{% endmacro %}{% set b = 7 %}{{ m() }}",
            "[]"
        ),
        (
            "{% set ns = namespace(n=0) %}{% macro inc() %}{% set ns.n = ns.n + 1 %}{% endmacro %}{{ inc() }}{{ inc() }}{{ ns.n }}",
            "2"
        ),
        // Content as a string or a list of parts, as GLM-4.6's visible_text macro reads it.
        (
            "{% macro text(c) %}{% if c is string %}{{ c }}{% elif c is iterable and c is not mapping %}"
                + "{% for p in c %}{{ p.text if p is mapping else p }}{% endfor %}{% else %}{{ c }}{% endif %}{% endmacro %}"
                + "{{ text('a') }}|{{ text([{'text': 'b'}, 'c']) }}|{{ text(none) }}|{{ text(nothing) }}|{{ text(['x /n']).endswith('/n') }}",
            "a|bc|None||True"
        ),
        (
            "{{ {'k': 'ß'} | tojson(ensure_ascii=False) }} {{ 'ß' | tojson(ensure_ascii=True) }}",
            "{\"k\": \"ß\"} \"\\u00df\""
        )
    ]

    func testRendersAsJinja2Does() throws {
        for (source, expected) in Self.renderings {
            XCTAssertEqual(try ChatTemplate(source).render(messages: [], addGenerationPrompt: false), expected, source)
        }
    }

    /// The reason of the chat-template error that `body` throws.
    private func reason(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
        } catch TokenizerError.unrenderableChatTemplate(let reason) {
            return reason
        } catch {
            XCTFail("unexpected \(error)")
        }
        XCTFail("no error")
        return ""
    }

    private func renderReason(_ source: String) -> String {
        reason { try ChatTemplate(source).render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true) }
    }

    func testConstructsOutsideTheSubsetAreRefusedByNameAndLine() {
        XCTAssertEqual(reason { try ChatTemplate("one\n{{ messages | wordcount }}") }, "line 2: unknown filter 'wordcount'")
        XCTAssertEqual(reason { try ChatTemplate("a\nb\n{% include 'other.jinja' %}") }, "line 3: unsupported tag 'include'")
        XCTAssertEqual(reason { try ChatTemplate("{{ x is prime }}") }, "line 1: unknown test 'prime'")
        XCTAssertEqual(reason { try ChatTemplate("\n{% for m in messages %}{{ m }}") }, "line 2: 'for' is not closed with else or endfor")
        XCTAssertEqual(reason { try ChatTemplate("{{ 'a' }}\n{% endif %}") }, "line 2: unexpected 'endif'")
        XCTAssertEqual(renderReason("\n\n{{ '%s' % 'x' }}"), "line 3: unsupported construct: string formatting with '%'")
        XCTAssertEqual(renderReason("{{ 'a'.format(1) }}"), "line 1: unsupported method str.format()")
        XCTAssertEqual(
            reason { try ChatTemplate("{% for m in messages %}\n{% macro f() %}{% endmacro %}{% endfor %}") },
            "line 2: unsupported construct: macro 'f' defined inside a loop or macro")
        XCTAssertEqual(
            reason { try ChatTemplate("{% macro f(a) %}\n{{ varargs }}{% endmacro %}") },
            "line 2: unsupported construct: 'varargs' in macro 'f'")
        XCTAssertEqual(
            reason { try ChatTemplate("{% macro f() %}{{ caller() }}{% endmacro %}") },
            "line 1: unsupported construct: 'caller' in macro 'f'")
    }

    func testMacroParametersAndArgumentsAreCheckedAsJinja2ChecksThem() {
        XCTAssertEqual(
            reason { try ChatTemplate("{% macro f(a=1, b) %}{% endmacro %}") },
            "line 1: macro 'f': non-default argument 'b' follows default argument")
        XCTAssertEqual(reason { try ChatTemplate("{% macro f(a, a) %}{% endmacro %}") }, "line 1: macro 'f' has two parameters named 'a'")
        XCTAssertEqual(reason { try ChatTemplate("{{ f(a=1, a=2) }}") }, "line 1: keyword argument repeated: a")
        XCTAssertEqual(
            renderReason("{% macro f(a) %}{% endmacro %}\n{{ f(1, 2) }}"), "line 2: macro 'f' takes not more than 1 argument(s)")
        XCTAssertEqual(renderReason("{% macro f(a) %}{% endmacro %}{{ f(1, a=2) }}"), "line 1: macro 'f' takes no keyword argument 'a'")
        XCTAssertEqual(renderReason("{% macro f(a) %}{{ a.b }}{% endmacro %}{{ f() }}"), "line 1: parameter 'a' was not provided")
    }

    func testRaiseExceptionNamesTheMessageAndLine() {
        let source =
            "{% for m in messages %}\n{% if m.role == 'user' %}\n{{ raise_exception('Only assistants here') }}\n{% endif %}\n{% endfor %}"
        XCTAssertEqual(renderReason(source), "the template raised an exception at line 3: Only assistants here")
    }

    func testRunawayTemplatesAreErrorsNotTraps() {
        XCTAssertEqual(
            renderReason(
                "{% for a in range(1000) %}\n{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}"),
            "line 2: the loop ran away: more than 1000000 iterations")
        XCTAssertEqual(
            renderReason("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}"), "line 1: macro 'f' recursed deeper than 32 calls")
        XCTAssertEqual(renderReason("{{ range(10000000) }}"), "line 1: range of 10000000 items is longer than 1000000")
        XCTAssertEqual(renderReason("{{ 'x' * 100000000 }}"), "line 1: a string grew past 67108864 bytes")
        XCTAssertEqual(renderReason("{{ 9223372036854775807 + 1 }}"), "line 1: integer overflow in +")
        XCTAssertEqual(
            reason {
                try ChatTemplate(
                    String(repeating: "{{ (", count: 1) + String(repeating: "(", count: 500) + "1" + String(repeating: ")", count: 501)
                        + " }}")
            },
            "line 1: expressions nest deeper than 100")
        XCTAssertEqual(renderReason("{{ messages[0].missing.deeper }}"), "line 1: 'dict object' has no attribute 'missing'")
    }
}
