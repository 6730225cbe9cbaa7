// Porter stemmer with the NLTK extensions (NLTK's default mode), the stemmer the rouge-score
// package applies to tokens longer than 3 characters. Input is lowercase ASCII.
#pragma once

#include <string>

namespace tandem {

/// Stems one lowercase ASCII word as nltk.stem.porter.PorterStemmer() does.
std::string porter_stem(const std::string& word);

}  // namespace tandem
