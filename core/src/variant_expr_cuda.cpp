// The variant language as CUDA source: FlexAttention functors (kernels/mods.cuh's protocol)
// that kernels/jit_variant.cpp compiles with NVRTC into the forward kernels. The code follows
// the CPU evaluator's rules (32-bit wrapping ints, floor division and modulo, x / 0 = 0,
// doc[i] / pos[i] = -1 out of range, NaN scores → -inf) so both sides compute the same variant;
// floats are float here and double on the CPU, tanh is tanh.approx like the built-in softcap.
#include <climits>
#include <cstdio>
#include <sstream>

#include "variant_expr_ops.h"

namespace attnscope {
namespace {

using namespace expr_detail;

/// Device helpers every generated program may call (inside namespace attnscope::flex::user).
constexpr const char* kHelpers = R"(namespace user {
__device__ __forceinline__ int add(int a, int b) { return int(unsigned(a) + unsigned(b)); }
__device__ __forceinline__ int sub(int a, int b) { return int(unsigned(a) - unsigned(b)); }
__device__ __forceinline__ int mul(int a, int b) { return int(unsigned(a) * unsigned(b)); }
__device__ __forceinline__ int neg(int a) { return int(0u - unsigned(a)); }
__device__ __forceinline__ int iabs(int a) { return a < 0 ? neg(a) : a; }
__device__ __forceinline__ int floorDiv(int a, int b) {
    if (b == 0) return 0;
    if (b == -1) return neg(a);
    int q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
__device__ __forceinline__ int floorMod(int a, int b) {
    if (b == 0 || b == -1) return 0;
    int r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
__device__ __forceinline__ float floorModF(float a, float b) { return a - b * floorf(a / b); }
__device__ __forceinline__ float slope(int h, int heads) {
    return heads > 0 ? exp2f(-8.0f * float(h + 1) / float(heads)) : 0.0f;
}
__device__ __forceinline__ float sanitize(float s) { return s != s ? -INFINITY : fminf(s, 1e30f); }
}  // namespace user
)";

const char* cudaType(ExprType t) { return t == ExprType::Bool ? "bool" : t == ExprType::Int ? "int" : "float"; }

std::string floatLiteral(double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    if (s == "inf") return "INFINITY";
    if (s == "-inf") return "(-INFINITY)";
    return "(" + s + "f)";
}

/// Where a node's value lives in a generated function: computed there (v<i>), a member set by
/// the score's bind() (m<i>), or a field of the mask's per-row (R.v<i>) or per-column (C.v<i>)
/// values, which the tile hook (kernels/jit_variant.cpp) computes once per row and column.
enum class Loc : uint8_t { Local, Member, Row, Col };

class Emitter {
public:
    explicit Emitter(const VariantExpr& e) : m_e(e) {}

    /// Writes the statements computing `root` and returns the C expression of its value. Nodes
    /// whose `loc` is not Local are read, not computed (their operands are not needed here).
    std::string body(int root, std::ostringstream& out, const std::vector<Loc>& loc) {
        std::vector<char> needed(size_t(root) + 1, 0);
        needed[size_t(root)] = 1;
        for (int i = root; i >= 0; --i) {
            if (!needed[size_t(i)] || (loc[size_t(i)] != Loc::Local && i != root)) continue;
            if (loc[size_t(i)] != Loc::Local) continue;
            const ExprNode& n = m_e.nodes[size_t(i)];
            for (int x : {n.a, n.b, n.c})
                if (x >= 0) needed[size_t(x)] = 1;
        }
        for (int i = 0; i <= root; ++i) {
            if (!needed[size_t(i)] || loc[size_t(i)] != Loc::Local) continue;
            const ExprNode& n = m_e.nodes[size_t(i)];
            if (isLeaf(n)) continue;  // written inline
            out << "        const " << cudaType(n.type) << " v" << i << " = " << expr(i, loc) << ";\n";
        }
        return ref(root, loc);
    }

    static bool isLeaf(const ExprNode& n) { return n.op <= ExprOp::Heads; }

private:
    std::string ref(int i, const std::vector<Loc>& loc) const {
        const ExprNode& n = m_e.nodes[size_t(i)];
        switch (n.op) {
        case ExprOp::Const:
            if (n.type == ExprType::Bool) return n.value != 0 ? "true" : "false";
            if (n.type == ExprType::Int) {
                const int64_t v = int64_t(n.value);
                if (v == INT32_MIN) return "(-2147483647 - 1)";  // the literal 2147483648 is not an int
                return v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v);
            }
            return floatLiteral(n.value);
        case ExprOp::Batch: return "b";
        case ExprOp::Head: return "h";
        case ExprOp::Query: return "q";
        case ExprOp::Key: return "k";
        case ExprOp::Score: return "s";
        case ExprOp::Tokens: return "tokens";
        case ExprOp::Heads: return "heads";
        default: break;
        }
        switch (loc[size_t(i)]) {
        case Loc::Member: return "m" + std::to_string(i);
        case Loc::Row: return "R.v" + std::to_string(i);
        case Loc::Col: return "C.v" + std::to_string(i);
        case Loc::Local: break;
        }
        return "v" + std::to_string(i);
    }

    std::string expr(int i, const std::vector<Loc>& loc) const {
        const ExprNode& n = m_e.nodes[size_t(i)];
        auto r = [&](int x) { return ref(x, loc); };
        // An operand as float (mixed int / float arithmetic promotes the int).
        auto f = [&](int x) { return m_e.nodes[size_t(x)].type == ExprType::Float ? r(x) : "float(" + r(x) + ")"; };
        const bool isInt = n.type == ExprType::Int;
        const bool floatOperands =
            n.a >= 0 && n.b >= 0 &&
            (m_e.nodes[size_t(n.a)].type == ExprType::Float || m_e.nodes[size_t(n.b)].type == ExprType::Float);
        auto bin = [&](const char* op) {
            return floatOperands ? "(" + f(n.a) + " " + op + " " + f(n.b) + ")"
                                 : "(" + r(n.a) + " " + op + " " + r(n.b) + ")";
        };
        switch (n.op) {
        case ExprOp::Doc: return "(" + r(n.a) + " >= 0 && " + r(n.a) + " < tokens ? doc[" + r(n.a) + "] : -1)";
        case ExprOp::Pos: return "(" + r(n.a) + " >= 0 && " + r(n.a) + " < tokens ? pos[" + r(n.a) + "] : -1)";
        case ExprOp::Neg: return isInt ? "user::neg(" + r(n.a) + ")" : "(-" + r(n.a) + ")";
        case ExprOp::Not: return "(!" + r(n.a) + ")";
        case ExprOp::ToFloat: return f(n.a);
        case ExprOp::Add: return isInt ? "user::add(" + r(n.a) + ", " + r(n.b) + ")" : bin("+");
        case ExprOp::Sub: return isInt ? "user::sub(" + r(n.a) + ", " + r(n.b) + ")" : bin("-");
        case ExprOp::Mul: return isInt ? "user::mul(" + r(n.a) + ", " + r(n.b) + ")" : bin("*");
        case ExprOp::Div: {
            if (isInt) return "user::floorDiv(" + r(n.a) + ", " + r(n.b) + ")";
            const ExprNode& d = m_e.nodes[size_t(n.b)];
            // A constant divisor becomes a multiplication by its reciprocal (no division loop).
            if (d.op == ExprOp::Const && d.value != 0) return "(" + f(n.a) + " * " + floatLiteral(1.0 / d.value) + ")";
            return bin("/");
        }
        case ExprOp::Mod:
            return isInt ? "user::floorMod(" + r(n.a) + ", " + r(n.b) + ")"
                         : "user::floorModF(" + f(n.a) + ", " + f(n.b) + ")";
        case ExprOp::Lt: return bin("<");
        case ExprOp::Le: return bin("<=");
        case ExprOp::Gt: return bin(">");
        case ExprOp::Ge: return bin(">=");
        case ExprOp::Eq: return bin("==");
        case ExprOp::Ne: return bin("!=");
        case ExprOp::And: return "(" + r(n.a) + " && " + r(n.b) + ")";
        case ExprOp::Or: return "(" + r(n.a) + " || " + r(n.b) + ")";
        case ExprOp::Min:
        case ExprOp::Max: {
            // a < b ? a : b, as the CPU does (NaN handling included).
            const std::string a = isInt ? r(n.a) : f(n.a), b = isInt ? r(n.b) : f(n.b);
            return "(" + a + (n.op == ExprOp::Min ? " < " : " > ") + b + " ? " + a + " : " + b + ")";
        }
        case ExprOp::Abs: return isInt ? "user::iabs(" + r(n.a) + ")" : "fabsf(" + r(n.a) + ")";
        case ExprOp::Tanh: return "fastTanh(" + f(n.a) + ")";
        case ExprOp::Exp: return "expf(" + f(n.a) + ")";
        case ExprOp::Log: return "logf(" + f(n.a) + ")";
        case ExprOp::Slope: return "user::slope(" + r(n.a) + ", heads)";
        case ExprOp::Where: {
            const bool fl = n.type == ExprType::Float;
            return "(" + r(n.a) + " ? " + (fl ? f(n.b) : r(n.b)) + " : " + (fl ? f(n.c) : r(n.c)) + ")";
        }
        default: return "0";
        }
    }

    const VariantExpr& m_e;
};

/// The nodes `root` needs, operands before users.
std::vector<char> neededBy(const VariantExpr& e, int root) {
    std::vector<char> needed(e.nodes.size(), 0);
    needed[size_t(root)] = 1;
    for (int i = root; i >= 0; --i)
        if (needed[size_t(i)])
            for (int x : {e.nodes[size_t(i)].a, e.nodes[size_t(i)].b, e.nodes[size_t(i)].c})
                if (x >= 0) needed[size_t(x)] = 1;
    return needed;
}

/// A struct of the hoisted values `fields` and the function computing them.
void emitValues(std::ostringstream& out, const VariantExpr& e, const char* type, const char* fn, const char* index,
                const std::vector<int>& fields) {
    out << "    struct " << type << " {\n";
    for (int i : fields) out << "        " << cudaType(e.nodes[size_t(i)].type) << " v" << i << ";\n";
    out << "    };\n";
    out << "    __device__ __forceinline__ " << type << " " << fn << "(int b, int h, int " << index << ") const {\n";
    out << "        (void)b, (void)h, (void)" << index << ";\n        " << type << " out{};\n";
    const std::vector<Loc> local(e.nodes.size(), Loc::Local);
    Emitter em(e);
    for (int i : fields) {
        std::ostringstream tmp;
        const std::string r = em.body(i, tmp, local);
        out << "        {\n" << tmp.str() << "        out.v" << i << " = " << r << ";\n        }\n";
    }
    out << "        return out;\n    }\n";
}

constexpr const char* kMembers = "    const int* doc;\n    const int* pos;\n    int tokens;\n    int heads;\n";

}  // namespace

std::string variantExprCudaSource(const VariantExpr& e) {
    std::ostringstream out;
    out << "// Generated by attnscope from: " << e.canonical << "\n";
    out << "namespace attnscope::flex {\n" << kHelpers;
    // ---- mask_mod: values of q alone (with b, h) once per row, of k alone once per column,
    // the rest per pair (pair()); operator() is pair(row(q), col(k)) for single calls.
    out << "struct UserMask {\n" << kMembers;
    std::vector<Loc> maskLoc(e.nodes.size(), Loc::Local);
    std::vector<int> rowFields, colFields;
    if (e.mask >= 0) {
        const std::vector<char> needed = neededBy(e, e.mask);
        auto side = [&](int i) -> Loc {
            const ExprNode& n = e.nodes[size_t(i)];
            if (Emitter::isLeaf(n)) return Loc::Local;
            const uint8_t other = n.deps & ~(kDepBatch | kDepHead | kDepArrays);
            if (other == kDepQuery || other == 0) return Loc::Row;
            if (other == kDepKey) return Loc::Col;
            return Loc::Local;
        };
        // A row or column value is a field when a per-pair node (or the result) reads it.
        for (int i = 0; i <= e.mask; ++i) {
            if (!needed[size_t(i)]) continue;
            const ExprNode& n = e.nodes[size_t(i)];
            const bool pairNode = side(i) == Loc::Local && !Emitter::isLeaf(n);
            for (int x : {n.a, n.b, n.c})
                if (x >= 0 && pairNode && side(x) != Loc::Local) maskLoc[size_t(x)] = side(x);
        }
        if (side(e.mask) != Loc::Local) maskLoc[size_t(e.mask)] = side(e.mask);
        for (int i = 0; i <= e.mask; ++i) {
            if (maskLoc[size_t(i)] == Loc::Row) rowFields.push_back(i);
            if (maskLoc[size_t(i)] == Loc::Col) colFields.push_back(i);
        }
    }
    emitValues(out, e, "Row", "row", "q", rowFields);
    emitValues(out, e, "Col", "col", "k", colFields);
    out << "    __device__ __forceinline__ bool pair(int b, int h, int q, int k, const Row& R, const Col& C) const {\n";
    out << "        (void)b, (void)h, (void)q, (void)k, (void)R, (void)C;\n";
    if (e.mask >= 0) {
        Emitter em(e);
        const std::string r = em.body(e.mask, out, maskLoc);
        out << "        return " << r << ";\n";
    } else {
        out << "        return true;\n";
    }
    out << "    }\n";
    out << "    __device__ __forceinline__ bool operator()(int b, int h, int q, int k) const {\n";
    out << "        return pair(b, h, q, k, row(b, h, q), col(b, h, k));\n    }\n};\n";
    // ---- score_mod: what depends on b and h only is computed once per CTA in bind()
    if (e.score >= 0) {
        Emitter em(e);
        std::vector<Loc> loc(e.nodes.size(), Loc::Local);
        std::vector<int> members;
        for (int i = 0; i <= e.score; ++i) {
            const ExprNode& n = e.nodes[size_t(i)];
            if (!Emitter::isLeaf(n) && (n.deps & ~(kDepBatch | kDepHead)) == 0) {
                loc[size_t(i)] = Loc::Member;
                members.push_back(i);
            }
        }
        out << "struct UserScore {\n    static constexpr bool kIdentity = false;\n" << kMembers;
        for (int i : members) out << "    " << cudaType(e.nodes[size_t(i)].type) << " m" << i << ";\n";
        out << "    __device__ __forceinline__ UserScore bind(int b, int h) const {\n";
        out << "        (void)b, (void)h;\n        UserScore bound = *this;\n";
        const std::vector<Loc> local(e.nodes.size(), Loc::Local);
        for (int i : members) {
            std::ostringstream tmp;
            const std::string r = em.body(i, tmp, local);
            out << "        {\n" << tmp.str() << "        bound.m" << i << " = " << r << ";\n        }\n";
        }
        out << "        return bound;\n    }\n";
        out << "    __device__ __forceinline__ float operator()(float s, int b, int h, int q, int k) const {\n";
        out << "        (void)s, (void)b, (void)h, (void)q, (void)k;\n";
        std::string r = em.body(e.score, out, loc);
        if (e.nodes[size_t(e.score)].type != ExprType::Float) r = "float(" + r + ")";
        out << "        return " << (e.scoreMayBeNonFinite() ? "user::sanitize(" + r + ")" : r) << ";\n";
        out << "    }\n};\n";
    } else {
        out << "using UserScore = IdentityScore;\n";
    }
    out << "}  // namespace attnscope::flex\n";
    return out.str();
}

}  // namespace attnscope
