#pragma once
// The 16-bit float conversions live in the public header (the kernels library packs with them too).
#include "attnscope/half.h"
