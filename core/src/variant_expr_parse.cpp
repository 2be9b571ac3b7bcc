// The variant language's lexer, parser and checker: text → a typed, constant-folded DAG
// (VariantExpr). Grammar (docs/variants.md):
//   program   := { statement (newline | ';') }
//   statement := 'const' NAME '=' expr | 'let' NAME '=' expr | 'mask' ':' expr | 'score' ':' expr
//              | 'documents' ':' INT
//   expr      := and { '||' and }          and := cmp { '&&' cmp }
//   cmp       := sum [ ('<' | '<=' | '>' | '>=' | '==' | '!=') sum ]
//   sum       := term { ('+' | '-') term }  term := unary { ('*' | '/' | '%') unary }
//   unary     := ('-' | '!') unary | primary
//   primary   := NUMBER | 'true' | 'false' | NAME | NAME '(' expr { ',' expr } ')'
//              | ('doc' | 'pos') '[' expr ']' | '(' expr ')'
// A newline ends a statement except inside brackets or after an operator or comma.
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "variant_expr_ops.h"

namespace attnscope {

const char* exprOpName(ExprOp op) {
    switch (op) {
    case ExprOp::Const: return "constant";
    case ExprOp::Batch: return "b";
    case ExprOp::Head: return "h";
    case ExprOp::Query: return "q";
    case ExprOp::Key: return "k";
    case ExprOp::Score: return "s";
    case ExprOp::Tokens: return "T";
    case ExprOp::Heads: return "H";
    case ExprOp::Doc: return "doc";
    case ExprOp::Pos: return "pos";
    case ExprOp::Neg: return "-";
    case ExprOp::Not: return "!";
    case ExprOp::ToFloat: return "float";
    case ExprOp::Add: return "+";
    case ExprOp::Sub: return "-";
    case ExprOp::Mul: return "*";
    case ExprOp::Div: return "/";
    case ExprOp::Mod: return "%";
    case ExprOp::Lt: return "<";
    case ExprOp::Le: return "<=";
    case ExprOp::Gt: return ">";
    case ExprOp::Ge: return ">=";
    case ExprOp::Eq: return "==";
    case ExprOp::Ne: return "!=";
    case ExprOp::And: return "&&";
    case ExprOp::Or: return "||";
    case ExprOp::Min: return "min";
    case ExprOp::Max: return "max";
    case ExprOp::Abs: return "abs";
    case ExprOp::Tanh: return "tanh";
    case ExprOp::Exp: return "exp";
    case ExprOp::Log: return "log";
    case ExprOp::Slope: return "slope";
    case ExprOp::Where: return "where";
    }
    return "?";
}

namespace expr_detail {

double slopeOf(double head, int heads) {
    constexpr double kAlibiExponentSpan = 8.0;  // attention_spec.cpp alibiSlope
    if (heads <= 0) return 0.0;
    return double(static_cast<float>(std::exp2(-kAlibiExponentSpan * (int(head) + 1) / heads)));
}

double foldOp(ExprOp op, bool isInt, double a, double b, double c) {
    return withPureOp(op, 0.0, [&](auto tag) { return scalarOp<decltype(tag)::value>(isInt, a, b, c); });
}

}  // namespace expr_detail

namespace {

using namespace expr_detail;

enum class Tok { Number, Name, Op, Newline, End };

struct Token {
    Tok kind = Tok::End;
    std::string text;
    bool isFloat = false;
    int line = 1, col = 1;
    size_t offset = 0;
};

/// How a token reads in a message: 'x', or "end of line" / "end of input".
std::string describe(const Token& t) {
    if (t.kind == Tok::Newline) return t.text == ";" ? "';'" : "end of line";
    if (t.kind == Tok::End) return "end of input";
    if (t.kind == Tok::Number) return "number " + t.text;
    return "'" + t.text + "'";
}

constexpr int kMaxNodes = 4096;  // a program larger than this is refused (GPU code size)
constexpr int kMaxDepth = 200;   // nesting depth (the recursive descent's stack)
constexpr size_t kMaxSource = 64 * 1024;

class Parser {
public:
    Parser(const std::string& text, const std::string& origin) : m_src(text), m_origin(origin) {}

    Result<std::shared_ptr<const VariantExpr>> run();

private:
    // ---- lexer
    Status lex();
    // ---- errors
    Status errorAt(int line, int col, const std::string& what) const {
        return {ErrorCode::InvalidArgument,
                m_origin + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + what};
    }
    Status expected(const std::string& what) const {
        const Token& t = peek();
        return errorAt(t.line, t.col, "expected " + what + ", found " + describe(t));
    }
    const Token& peek(size_t ahead = 0) const { return m_toks[std::min(m_pos + ahead, m_toks.size() - 1)]; }
    bool isOp(const char* op, size_t ahead = 0) const { return peek(ahead).kind == Tok::Op && peek(ahead).text == op; }
    void skipNewlinesAfterOperator() {
        while (peek().kind == Tok::Newline && peek().text == "\n") ++m_pos;
    }
    // ---- statements and expressions
    Status statement();
    Result<int> expression();
    Result<int> orExpr();
    Result<int> andExpr();
    Result<int> compare();
    Result<int> sum();
    Result<int> term();
    Result<int> unary();
    Result<int> primary();
    Result<int> call(const Token& name);
    // ---- nodes
    Result<int> node(ExprOp op, const Token& at, int a = -1, int b = -1, int c = -1);
    Result<int> leaf(ExprOp op, ExprType type, const Token& at, double value = 0);
    const ExprNode& at(int i) const { return m_expr->nodes[size_t(i)]; }
    static bool numeric(ExprType t) { return t != ExprType::Bool; }
    static const char* typeName(ExprType t) {
        return t == ExprType::Bool ? "a condition" : t == ExprType::Int ? "an integer" : "a number";
    }
    Status needType(int n, const Token& at, bool wantBool, const std::string& context) const {
        if ((at_(n).type == ExprType::Bool) == wantBool) return {};
        return errorAt(
            at.line, at.col,
            context + " expects " + (wantBool ? "a condition" : "a number") + ", got " + typeName(at_(n).type));
    }
    const ExprNode& at_(int i) const { return at(i); }

    const std::string& m_src;
    std::string m_origin;
    std::vector<Token> m_toks;
    size_t m_pos = 0;
    int m_depth = 0;
    std::shared_ptr<VariantExpr> m_expr = std::make_shared<VariantExpr>();
    struct Binding {
        int node;
        int line;
        bool isConst;
    };
    std::map<std::string, Binding> m_names;
    std::vector<std::string> m_statements;  // canonical text of each statement
    int m_documentsLine = 0;
};

Status Parser::lex() {
    int line = 1, col = 1, depth = 0;
    size_t i = 0;
    auto advance = [&](size_t n) {
        for (size_t j = 0; j < n; ++j, ++i) {
            if (m_src[i] == '\n')
                ++line, col = 1;
            else
                ++col;
        }
    };
    static const char* kOps2[] = {"&&", "||", "<=", ">=", "==", "!="};
    while (i < m_src.size()) {
        const char ch = m_src[i];
        Token t;
        t.line = line, t.col = col, t.offset = i;
        if (ch == '#') {
            while (i < m_src.size() && m_src[i] != '\n') advance(1);
            continue;
        }
        if (ch == '\n' || ch == ';') {
            if (depth == 0 || ch == ';') {
                t.kind = Tok::Newline;
                t.text = std::string(1, ch);
                m_toks.push_back(t);
            }
            advance(1);
            continue;
        }
        if (std::isspace(static_cast<unsigned char>(ch))) {
            advance(1);
            continue;
        }
        if (std::isdigit(static_cast<unsigned char>(ch)) ||
            (ch == '.' && i + 1 < m_src.size() && std::isdigit(static_cast<unsigned char>(m_src[i + 1])))) {
            size_t j = i;
            bool isFloat = false;
            while (j < m_src.size() && std::isdigit(static_cast<unsigned char>(m_src[j]))) ++j;
            if (j < m_src.size() && m_src[j] == '.') {
                isFloat = true;
                ++j;
                while (j < m_src.size() && std::isdigit(static_cast<unsigned char>(m_src[j]))) ++j;
            }
            if (j < m_src.size() && (m_src[j] == 'e' || m_src[j] == 'E')) {
                size_t e = j + 1;
                if (e < m_src.size() && (m_src[e] == '+' || m_src[e] == '-')) ++e;
                if (e < m_src.size() && std::isdigit(static_cast<unsigned char>(m_src[e]))) {
                    isFloat = true;
                    j = e;
                    while (j < m_src.size() && std::isdigit(static_cast<unsigned char>(m_src[j]))) ++j;
                } else {
                    return errorAt(line, col + int(e - i),
                                   "expected the digits of an exponent in '" + m_src.substr(i, e - i + 1) + "'");
                }
            }
            if (j < m_src.size() && (std::isalpha(static_cast<unsigned char>(m_src[j])) || m_src[j] == '_'))
                return errorAt(line, col + int(j - i),
                               "expected an operator after number '" + m_src.substr(i, j - i) + "', found '" +
                                   std::string(1, m_src[j]) + "'");
            t.kind = Tok::Number;
            t.text = m_src.substr(i, j - i);
            t.isFloat = isFloat;
            m_toks.push_back(t);
            advance(j - i);
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(ch)) || ch == '_') {
            size_t j = i;
            while (j < m_src.size() && (std::isalnum(static_cast<unsigned char>(m_src[j])) || m_src[j] == '_')) ++j;
            t.kind = Tok::Name;
            t.text = m_src.substr(i, j - i);
            m_toks.push_back(t);
            advance(j - i);
            continue;
        }
        bool two = false;
        for (const char* op : kOps2)
            if (m_src.compare(i, 2, op) == 0) two = true;
        if (two || std::string("+-*/%<>!=()[],:").find(ch) != std::string::npos) {
            t.kind = Tok::Op;
            t.text = m_src.substr(i, two ? 2 : 1);
            if (t.text == "(" || t.text == "[") ++depth;
            if ((t.text == ")" || t.text == "]") && depth > 0) --depth;
            m_toks.push_back(t);
            advance(two ? 2 : 1);
            continue;
        }
        if (ch == '&' || ch == '|')
            return errorAt(line, col,
                           std::string("expected '") + ch + ch + "' (the language has no bitwise '" + ch + "')");
        const unsigned char u = static_cast<unsigned char>(ch);
        char buf[16];
        std::snprintf(buf, sizeof buf, u >= 0x20 && u < 0x7f ? "'%c'" : "byte 0x%02x", u);
        return errorAt(line, col, std::string("unexpected character ") + buf);
    }
    Token end;
    end.kind = Tok::End;
    end.line = line, end.col = col, end.offset = m_src.size();
    m_toks.push_back(end);
    return {};
}

Result<int> Parser::leaf(ExprOp op, ExprType type, const Token& t, double value) {
    if (int(m_expr->nodes.size()) >= kMaxNodes)
        return errorAt(t.line, t.col, "expected a program of at most " + std::to_string(kMaxNodes) + " operations");
    ExprNode n;
    n.op = op, n.type = type, n.value = value, n.line = t.line, n.col = t.col;
    switch (op) {
    case ExprOp::Batch: n.deps = kDepBatch; break;
    case ExprOp::Head: n.deps = kDepHead; break;
    case ExprOp::Query: n.deps = kDepQuery; break;
    case ExprOp::Key: n.deps = kDepKey; break;
    case ExprOp::Score: n.deps = kDepScore; break;
    default: break;
    }
    m_expr->nodes.push_back(n);
    return int(m_expr->nodes.size()) - 1;
}

/// Type-checks an operator node, folds it when its operands are constants, and appends it.
Result<int> Parser::node(ExprOp op, const Token& t, int a, int b, int c) {
    const std::string ctx = std::string("'") + exprOpName(op) + "'";
    ExprType type = ExprType::Int;
    bool intArith = false;
    switch (op) {
    case ExprOp::Neg:
    case ExprOp::Abs:
        if (Status s = needType(a, t, false, ctx); !s) return s;
        type = at(a).type;
        intArith = type == ExprType::Int;
        break;
    case ExprOp::Not:
        if (Status s = needType(a, t, true, ctx); !s) return s;
        type = ExprType::Bool;
        break;
    case ExprOp::ToFloat:
    case ExprOp::Tanh:
    case ExprOp::Exp:
    case ExprOp::Log:
        if (Status s = needType(a, t, false, ctx); !s) return s;
        type = ExprType::Float;
        break;
    case ExprOp::Slope:
    case ExprOp::Doc:
    case ExprOp::Pos:
        if (at(a).type != ExprType::Int)
            return errorAt(t.line, t.col, ctx + " expects an integer index, got " + typeName(at(a).type));
        type = op == ExprOp::Slope ? ExprType::Float : ExprType::Int;
        break;
    case ExprOp::Add:
    case ExprOp::Sub:
    case ExprOp::Mul:
    case ExprOp::Div:
    case ExprOp::Mod:
    case ExprOp::Min:
    case ExprOp::Max:
        if (Status s = needType(a, t, false, ctx); !s) return s;
        if (Status s = needType(b, t, false, ctx); !s) return s;
        type = at(a).type == ExprType::Int && at(b).type == ExprType::Int ? ExprType::Int : ExprType::Float;
        intArith = type == ExprType::Int;
        if ((op == ExprOp::Div || op == ExprOp::Mod) && intArith && at(b).op == ExprOp::Const && at(b).value == 0)
            return errorAt(t.line, t.col, ctx + ": the divisor is the constant 0 (expected a non-zero divisor)");
        break;
    case ExprOp::Lt:
    case ExprOp::Le:
    case ExprOp::Gt:
    case ExprOp::Ge:
        if (Status s = needType(a, t, false, ctx); !s) return s;
        if (Status s = needType(b, t, false, ctx); !s) return s;
        type = ExprType::Bool;
        break;
    case ExprOp::Eq:
    case ExprOp::Ne:
        if ((at(a).type == ExprType::Bool) != (at(b).type == ExprType::Bool))
            return errorAt(t.line, t.col,
                           ctx + " compares " + typeName(at(a).type) + " with " + typeName(at(b).type) +
                               " (expected two numbers or two conditions)");
        type = ExprType::Bool;
        break;
    case ExprOp::And:
    case ExprOp::Or:
        if (Status s = needType(a, t, true, ctx); !s) return s;
        if (Status s = needType(b, t, true, ctx); !s) return s;
        type = ExprType::Bool;
        break;
    case ExprOp::Where:
        if (Status s = needType(a, t, true, "where()'s first argument"); !s) return s;
        if ((at(b).type == ExprType::Bool) != (at(c).type == ExprType::Bool))
            return errorAt(t.line, t.col,
                           std::string("where() chooses between ") + typeName(at(b).type) + " and " +
                               typeName(at(c).type) + " (expected two numbers or two conditions)");
        type = at(b).type == ExprType::Bool                                 ? ExprType::Bool
               : at(b).type == ExprType::Int && at(c).type == ExprType::Int ? ExprType::Int
                                                                            : ExprType::Float;
        break;
    default: return errorAt(t.line, t.col, "internal: unexpected operator");
    }
    const bool allConst = (a < 0 || at(a).op == ExprOp::Const) && (b < 0 || at(b).op == ExprOp::Const) &&
                          (c < 0 || at(c).op == ExprOp::Const);
    if (allConst && isPureOp(op)) {
        const double v =
            foldOp(op, intArith, a >= 0 ? at(a).value : 0, b >= 0 ? at(b).value : 0, c >= 0 ? at(c).value : 0);
        return leaf(ExprOp::Const, type, t, v);
    }
    if (int(m_expr->nodes.size()) >= kMaxNodes)
        return errorAt(t.line, t.col, "expected a program of at most " + std::to_string(kMaxNodes) + " operations");
    ExprNode n;
    n.op = op, n.type = type, n.a = a, n.b = b, n.c = c, n.line = t.line, n.col = t.col;
    for (int x : {a, b, c})
        if (x >= 0) n.deps |= at(x).deps;
    if (op == ExprOp::Doc || op == ExprOp::Pos) n.deps |= kDepArrays;
    m_expr->nodes.push_back(n);
    return int(m_expr->nodes.size()) - 1;
}

Result<int> Parser::expression() {
    if (++m_depth > kMaxDepth) {
        const Token& t = peek();
        return errorAt(t.line, t.col, "expected an expression nested at most " + std::to_string(kMaxDepth) + " deep");
    }
    auto r = orExpr();
    --m_depth;
    return r;
}

Result<int> Parser::orExpr() {
    auto lhs = andExpr();
    while (lhs && isOp("||")) {
        const Token t = peek();
        ++m_pos;
        skipNewlinesAfterOperator();
        auto rhs = andExpr();
        if (!rhs) return rhs;
        lhs = node(ExprOp::Or, t, *lhs, *rhs);
    }
    return lhs;
}

Result<int> Parser::andExpr() {
    auto lhs = compare();
    while (lhs && isOp("&&")) {
        const Token t = peek();
        ++m_pos;
        skipNewlinesAfterOperator();
        auto rhs = compare();
        if (!rhs) return rhs;
        lhs = node(ExprOp::And, t, *lhs, *rhs);
    }
    return lhs;
}

Result<int> Parser::compare() {
    auto lhs = sum();
    if (!lhs) return lhs;
    static const std::pair<const char*, ExprOp> kCmp[] = {{"<", ExprOp::Lt},  {"<=", ExprOp::Le}, {">", ExprOp::Gt},
                                                          {">=", ExprOp::Ge}, {"==", ExprOp::Eq}, {"!=", ExprOp::Ne}};
    for (auto [text, op] : kCmp) {
        if (!isOp(text)) continue;
        const Token t = peek();
        ++m_pos;
        skipNewlinesAfterOperator();
        auto rhs = sum();
        if (!rhs) return rhs;
        auto r = node(op, t, *lhs, *rhs);
        if (!r) return r;
        for (auto [text2, op2] : kCmp)
            if (isOp(text2))
                return errorAt(peek().line, peek().col,
                               std::string("expected '&&' or '||' between comparisons, found '") + text2 +
                                   "' (comparisons do not chain: write a < b && b < c)");
        return r;
    }
    return lhs;
}

Result<int> Parser::sum() {
    auto lhs = term();
    while (lhs && (isOp("+") || isOp("-"))) {
        const Token t = peek();
        ++m_pos;
        skipNewlinesAfterOperator();
        auto rhs = term();
        if (!rhs) return rhs;
        lhs = node(t.text == "+" ? ExprOp::Add : ExprOp::Sub, t, *lhs, *rhs);
    }
    return lhs;
}

Result<int> Parser::term() {
    auto lhs = unary();
    while (lhs && (isOp("*") || isOp("/") || isOp("%"))) {
        const Token t = peek();
        ++m_pos;
        skipNewlinesAfterOperator();
        auto rhs = unary();
        if (!rhs) return rhs;
        lhs = node(t.text == "*" ? ExprOp::Mul : t.text == "/" ? ExprOp::Div : ExprOp::Mod, t, *lhs, *rhs);
    }
    return lhs;
}

Result<int> Parser::unary() {
    if (isOp("-") || isOp("!")) {
        const Token t = peek();
        ++m_pos;
        if (++m_depth > kMaxDepth)
            return errorAt(t.line, t.col, "expected at most " + std::to_string(kMaxDepth) + " nested operators");
        auto a = unary();
        --m_depth;
        if (!a) return a;
        return node(t.text == "-" ? ExprOp::Neg : ExprOp::Not, t, *a);
    }
    return primary();
}

Result<int> Parser::primary() {
    const Token t = peek();
    if (t.kind == Tok::Number) {
        ++m_pos;
        if (t.isFloat) {
            const double v = std::strtod(t.text.c_str(), nullptr);
            constexpr double kFloatMax = 3.4028234663852886e38;  // the GPU evaluates in float
            if (!(std::fabs(v) <= kFloatMax))
                return errorAt(t.line, t.col,
                               "expected a number within the float range (|x| <= 3.4e38), found " + t.text);
            return leaf(ExprOp::Const, ExprType::Float, t, v);
        }
        if (t.text.size() > 10 || std::strtoll(t.text.c_str(), nullptr, 10) > INT32_MAX)
            return errorAt(t.line, t.col,
                           "expected an integer up to 2147483647, found " + t.text + " (write " + t.text +
                               ".0 for a floating-point number)");
        return leaf(ExprOp::Const, ExprType::Int, t, double(std::strtoll(t.text.c_str(), nullptr, 10)));
    }
    if (isOp("(")) {
        ++m_pos;
        auto e = expression();
        if (!e) return e;
        if (!isOp(")"))
            return expected("')' to close the '(' at " + std::to_string(t.line) + ":" + std::to_string(t.col));
        ++m_pos;
        return e;
    }
    if (t.kind != Tok::Name) return expected("an expression");
    ++m_pos;
    if (isOp("(")) return call(t);
    if (t.text == "doc" || t.text == "pos") {
        if (!isOp("[")) return expected("'[' after '" + t.text + "' (per-token array: " + t.text + "[i])");
        ++m_pos;
        auto i = expression();
        if (!i) return i;
        if (!isOp("]")) return expected("']' to close " + t.text + "[");
        ++m_pos;
        return node(t.text == "doc" ? ExprOp::Doc : ExprOp::Pos, t, *i);
    }
    static const std::pair<const char*, ExprOp> kVars[] = {{"b", ExprOp::Batch},  {"h", ExprOp::Head},
                                                           {"q", ExprOp::Query},  {"k", ExprOp::Key},
                                                           {"T", ExprOp::Tokens}, {"H", ExprOp::Heads}};
    for (auto [name, op] : kVars)
        if (t.text == name) return leaf(op, ExprType::Int, t);
    if (t.text == "s") return leaf(ExprOp::Score, ExprType::Float, t);
    if (t.text == "true" || t.text == "false") return leaf(ExprOp::Const, ExprType::Bool, t, t.text == "true" ? 1 : 0);
    if (auto it = m_names.find(t.text); it != m_names.end()) return it->second.node;
    return errorAt(t.line, t.col,
                   "unknown name '" + t.text +
                       "' (expected b, h, q, k, s, T, H, doc[i], pos[i], a function call, or a name "
                       "declared earlier with const or let)");
}

Result<int> Parser::call(const Token& name) {
    static const std::map<std::string, std::pair<ExprOp, int>> kFunctions = {
        {"min", {ExprOp::Min, 2}},     {"max", {ExprOp::Max, 2}},     {"abs", {ExprOp::Abs, 1}},
        {"tanh", {ExprOp::Tanh, 1}},   {"exp", {ExprOp::Exp, 1}},     {"log", {ExprOp::Log, 1}},
        {"where", {ExprOp::Where, 3}}, {"slope", {ExprOp::Slope, 1}}, {"float", {ExprOp::ToFloat, 1}}};
    auto f = kFunctions.find(name.text);
    if (f == kFunctions.end())
        return errorAt(
            name.line, name.col,
            "unknown function '" + name.text + "' (expected min, max, abs, tanh, exp, log, where, slope or float)");
    ++m_pos;  // '('
    std::vector<int> args;
    if (!isOp(")")) {
        while (true) {
            skipNewlinesAfterOperator();
            auto a = expression();
            if (!a) return a;
            args.push_back(*a);
            if (isOp(",")) {
                ++m_pos;
                continue;
            }
            break;
        }
    }
    if (!isOp(")")) return expected("',' or ')' in the arguments of " + name.text + "()");
    ++m_pos;
    const int want = f->second.second;
    if (int(args.size()) != want)
        return errorAt(name.line, name.col,
                       name.text + "() takes " + std::to_string(want) + " argument" + (want == 1 ? "" : "s") +
                           ", got " + std::to_string(args.size()));
    args.resize(3, -1);
    return node(f->second.first, name, args[0], args[1], args[2]);
}

Status Parser::statement() {
    const Token t = peek();
    const size_t start = t.offset;
    if (t.kind != Tok::Name)
        return expected("a statement (const NAME = …, let NAME = …, mask: …, score: … or documents: N)");
    auto declare = [&](bool isConst) -> Status {
        ++m_pos;
        const Token name = peek();
        if (name.kind != Tok::Name) return expected(std::string("a name after '") + (isConst ? "const" : "let") + "'");
        static const char* kReserved[] = {"b",     "h",     "q",     "k",   "s",    "T",     "H",        "doc", "pos",
                                          "true",  "false", "min",   "max", "abs",  "tanh",  "exp",      "log", "where",
                                          "slope", "float", "const", "let", "mask", "score", "documents"};
        for (const char* r : kReserved)
            if (name.text == r)
                return errorAt(name.line, name.col, "expected a new name, found the reserved name '" + name.text + "'");
        if (auto it = m_names.find(name.text); it != m_names.end())
            return errorAt(name.line, name.col,
                           "'" + name.text + "' is already defined on line " + std::to_string(it->second.line) +
                               " (expected a new name)");
        ++m_pos;
        if (!isOp("=")) return expected("'=' after '" + name.text + "'");
        ++m_pos;
        auto e = expression();
        if (!e) return e.status();
        if (isConst && at(*e).op != ExprOp::Const)
            return errorAt(name.line, name.col,
                           "const " + name.text +
                               ": expected a constant value (numbers and earlier constants; use "
                               "let for values of q, k, s, doc[], …)");
        if (isConst) m_expr->constants.emplace_back(name.text, at(*e).value);
        m_names[name.text] = {*e, name.line, isConst};
        return {};
    };
    Status st;
    if (t.text == "const" || t.text == "let") {
        st = declare(t.text == "const");
    } else if (t.text == "mask" || t.text == "score") {
        const bool isMask = t.text == "mask";
        ++m_pos;
        if (!isOp(":")) return expected("':' after '" + t.text + "'");
        ++m_pos;
        if ((isMask ? m_expr->mask : m_expr->score) >= 0)
            return errorAt(t.line, t.col, "a second '" + t.text + ":' statement (expected one per program)");
        auto e = expression();
        if (!e) return e.status();
        const ExprNode& n = at(*e);
        if (isMask) {
            if (n.type != ExprType::Bool)
                return errorAt(n.line, n.col,
                               std::string("mask: expected a condition (true where the pair is "
                                           "computed), got ") +
                                   typeName(n.type));
            if (n.deps & kDepScore)
                return errorAt(n.line, n.col, "mask: reads the score 's', which only a 'score:' statement may use");
            m_expr->mask = *e;
        } else {
            if (n.type == ExprType::Bool)
                return errorAt(n.line, n.col, "score: expected a number (the new score), got a condition");
            m_expr->score = *e;
        }
    } else if (t.text == "documents") {
        ++m_pos;
        if (!isOp(":")) return expected("':' after 'documents'");
        ++m_pos;
        const Token n = peek();
        const long long v = n.kind == Tok::Number && !n.isFloat ? std::strtoll(n.text.c_str(), nullptr, 10) : 0;
        if (v <= 0 || v > (1 << 30)) return expected("a positive integer number of documents");
        if (m_documentsLine) return errorAt(t.line, t.col, "a second 'documents:' statement");
        m_documentsLine = t.line;
        m_expr->documents = int(v);
        ++m_pos;
    } else {
        return errorAt(t.line, t.col,
                       "expected a statement (const NAME = …, let NAME = …, mask: …, score: … or "
                       "documents: N), found '" +
                           t.text + "'");
    }
    if (!st) return st;
    if (peek().kind != Tok::Newline && peek().kind != Tok::End)
        return expected("an operator, or the end of the statement (a new line or ';')");
    // Canonical text: the statement with comments dropped and whitespace collapsed.
    std::string text, raw = m_src.substr(start, peek().offset - start);
    bool space = false, comment = false;
    for (char c : raw) {
        if (c == '#') comment = true;
        if (c == '\n') comment = false;
        if (comment) continue;
        if (std::isspace(static_cast<unsigned char>(c))) {
            space = !text.empty();
            continue;
        }
        if (space) text += ' ';
        space = false;
        text += c;
    }
    m_statements.push_back(text);
    return {};
}

Result<std::shared_ptr<const VariantExpr>> Parser::run() {
    if (m_src.size() > kMaxSource)
        return errorAt(1, 1,
                       "expected a program of at most " + std::to_string(kMaxSource / 1024) + " KiB, got " +
                           std::to_string(m_src.size()) + " bytes");
    if (Status s = lex(); !s) return s;
    while (peek().kind != Tok::End) {
        if (peek().kind == Tok::Newline) {
            ++m_pos;
            continue;
        }
        if (Status s = statement(); !s) return s;
    }
    if (m_expr->mask < 0 && m_expr->score < 0)
        return errorAt(peek().line, peek().col, "expected a 'mask:' or a 'score:' statement, found none");
    m_expr->origin = m_origin;
    m_expr->source = m_src;
    for (const auto& s : m_statements) m_expr->canonical += (m_expr->canonical.empty() ? "" : "; ") + s;
    return std::shared_ptr<const VariantExpr>(std::move(m_expr));
}

}  // namespace

bool VariantExpr::scoreMayBeNonFinite() const {
    if (score < 0) return false;
    // Conservative: any operator anywhere in the program that can leave the finite range when its
    // operands are finite and of the size scores have (|s| far below 1e30).
    constexpr double kLargeFactor = 1e4;
    auto isConst = [&](int i) { return nodes[size_t(i)].op == ExprOp::Const; };
    for (const ExprNode& n : nodes) {
        if (n.type != ExprType::Float) continue;
        switch (n.op) {
        case ExprOp::Exp:
        case ExprOp::Log: return true;
        case ExprOp::Div:
        case ExprOp::Mod:
            if (!isConst(n.b) || nodes[size_t(n.b)].value == 0) return true;
            break;
        case ExprOp::Mul:  // a product of two score-dependent values (s·s) can overflow
            if ((nodes[size_t(n.a)].deps & kDepScore) && (nodes[size_t(n.b)].deps & kDepScore)) return true;
            if ((isConst(n.a) && std::fabs(nodes[size_t(n.a)].value) > kLargeFactor) ||
                (isConst(n.b) && std::fabs(nodes[size_t(n.b)].value) > kLargeFactor))
                return true;
            break;
        default: break;
        }
    }
    return false;
}

Result<std::shared_ptr<const VariantExpr>> parseVariantExpr(const std::string& text, const std::string& origin) {
    Parser p(text, origin);
    return p.run();
}

Result<std::shared_ptr<const VariantExpr>> loadVariantExpr(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status{ErrorCode::IoError, "variant file " + path + ": cannot open it for reading"};
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return Status{ErrorCode::IoError, "variant file " + path + ": read failed"};
    return parseVariantExpr(text.str(), path);
}

ExprTokens exprTokensFromDocuments(std::vector<int32_t> doc) {
    ExprTokens t;
    t.pos.resize(doc.size());
    int32_t run = 0;
    for (size_t i = 0; i < doc.size(); ++i) {
        run = i > 0 && doc[i] == doc[i - 1] ? run + 1 : 0;
        t.pos[i] = run;
    }
    t.doc = std::move(doc);
    return t;
}

}  // namespace attnscope
