// UTF-8 hygiene for text that crosses to users: error messages quote file contents, and a
// message with a stray byte must still reach Python (whose str is strictly UTF-8) intact.
#pragma once

#include <string>
#include <string_view>

namespace tandem {

/// `s` with every byte that is not part of a valid UTF-8 sequence written as "\xNN"; valid
/// text (including multi-byte characters) is returned unchanged.
std::string escape_invalid_utf8(std::string_view s);

}  // namespace tandem
