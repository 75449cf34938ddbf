/* version.h: anemake's own version and the ANEMLL release whose interface it
 * matches. Here, at the bottom, because the compiled-model writer records
 * the converter's version as Apple's compiler records its own, and the
 * ANEMLL conventions name both. */
#ifndef ANEMAKE_VERSION_H
#define ANEMAKE_VERSION_H

#define ANEMLL_VERSION "0.3.5"
#define ANEMAKE_VERSION "0.1.0"

#endif
