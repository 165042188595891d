/* Random-weight phi3 models as GGUF; see vkllm/mkmodel.h.
 *
 * Layout and metadata follow llama.cpp's converter for Phi-3/Phi-4 (fused attn_qkv, ffn_up holding
 * gate rows then up rows, sliding_window 0 meaning none); the Q4_K_M mix follows llama.cpp's quantize
 * rules (attn_qkv Q5_K, output Q6_K, ffn_down Q6_K in the "more bits" layers, the rest Q4_K).
 *
 * Weights are streamed: each tensor is cut into row chunks whose random stream depends only on
 * (seed, tensor, chunk), workers fill a ring of chunk buffers and the calling thread writes them in
 * order, so memory stays bounded and the bytes do not depend on the thread count. */
#include "vkllm/mkmodel.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vkllm/gguf.h"
#include "vkllm/half.h"

/* ------------------------------------------------------------------------------------------------
 * Byte-level BPE vocabulary learned from a short English text (original prose written for vkllm) */

static const char *const bpe_text[] = {
    "The small town sat at the edge of a wide river, and every morning the fog rolled in from the water before the sun burned it away. People who lived there liked to say that the weather changed its mind more often than the mayor did. In the spring the fields turned green, the birds came back from the south, and children ran along the banks looking for frogs and smooth stones.\n",
    "On the main street there was a bakery that opened before dawn. The baker, a patient woman with flour on her sleeves, made bread the same way her mother had taught her: water, salt, flour and time. She said that good bread could not be rushed, and that the most important thing was to let the dough rest while you did something else. Her customers believed her, because the bread was always warm and",
    " the crust always cracked when you pressed it.\n",
    "Across the street stood the library, a stone building with tall windows and a quiet reading room. The librarian kept a list of every book that had ever been borrowed, and she could tell you which stories were popular in any year you asked about. In winter the room was full of students who came to study, to write letters, or simply to sit near the heater and read the newspaper.\n",
    "A computer is a machine that follows instructions. It reads a program, one step at a time, and each step changes a small piece of memory. The idea sounds simple, but the results can be surprising. With enough steps and enough memory, a computer can draw a picture, play music, predict the weather, or translate a sentence from one language into another. The hard part is not the machine itself but",
    " the program, because the program must describe exactly what should happen in every situation.\n",
    "Programmers learn early that a computer does what you say, not what you mean. If you forget to check whether a number is zero before you divide by it, the program will fail at the worst possible moment. If you read past the end of a list, you may find old data that belongs to someone else. Careful programmers write tests, read each other's code, and think about what could go wrong before it does.\n",
    "Language models are programs that predict the next word in a piece of text. They are trained on large collections of writing, and during training they adjust millions or billions of numbers, called weights, so that their predictions become a little better each time. When the training is finished, the model can continue a sentence, answer a question, or summarize a long document. The model does",
    " not understand the world the way a person does, but it has seen so many examples that its guesses are often useful.\n",
    "To run a model on a personal computer, the weights are usually stored in a compact form. Each number is rounded to a small set of values, which makes the file smaller and the computation faster. This process is called quantization. A good quantization method keeps the most important information and throws away the rest, so that the model still gives nearly the same answers while using much less",
    " memory.\n",
    "The river was important to the town for many reasons. Boats carried grain and wood downstream to the city, and in the summer families took small boats out on the water to fish or to have a picnic on the island. Once every few years the river rose after a long rain and covered the lower fields, and then everyone worked together to move the animals to higher ground and to fill bags with sand.\n",
    "The old bridge had been built more than a hundred years ago. It was made of iron and painted green, and it made a low humming sound when the wind blew from the west. Visitors often stopped in the middle of the bridge to take pictures of the water and the hills. The town council talked about building a new bridge, but nobody wanted to lose the old one, so they decided to repair it instead.\n",
    "Travel teaches patience. Trains are late, roads are closed, and the hotel you booked may have given your room to someone else. The best travelers are the ones who expect small problems and treat them as part of the story. They carry a good book, a warm coat and a little extra money, and they talk to the people they meet along the way. Many of the best memories come from the plans that did not",
    " work out.\n",
    "Cooking is a kind of experiment that you can eat. You start with a recipe, but soon you learn that every kitchen is different: the oven may be hotter than the number on the dial, the tomatoes may be sweeter this year, and the onions may need more time to soften. A good cook tastes the food while it cooks and changes the plan when something is not right. Salt, acid, fat and heat are the four tools",
    " that solve most problems.\n",
    "In the evening the town grew quiet. The shops closed one by one, the lights came on in the windows, and the smell of dinner drifted into the street. Old men played cards at a table outside the cafe, arguing about the rules as they had done for forty years. Above the hills the first stars appeared, and somewhere a dog barked at nothing in particular.\n",
    "Mathematics is the study of patterns. A pattern may be a sequence of numbers, the shape of a leaf, or the way a sound wave repeats. Mathematicians look for rules that explain the pattern and then try to prove that the rules are always true. A proof is a chain of small steps, each one following from the steps before it, so that anyone who checks the chain carefully must agree with the result.\n",
    "Numbers in a computer are not the same as numbers on paper. A computer has only a fixed number of bits for each value, so very large or very small numbers must be rounded. Most of the time the rounding error is tiny and nobody notices, but when many small errors add up, the final answer can drift far from the truth. This is why scientists who write programs for weather or physics are careful",
    " about the order in which they add their numbers.\n",
    "The school at the top of the hill had three classrooms and a garden. The teachers believed that children learn best when they use their hands, so every class grew vegetables, measured the rain, and kept a notebook about the birds that visited the garden. At the end of each year the students cooked a meal from their harvest and invited their parents to eat with them.\n",
    "Music filled the square on summer nights. A band played old songs that everyone knew, and people of every age danced on the stones until the church bell rang midnight. The musicians were not famous, and some of them worked in the bakery or at the post office during the day, but they played with so much joy that visitors sometimes stayed an extra night just to hear them again.\n",
    "Writing clearly is a skill that takes practice. A clear sentence says one thing and says it directly. It uses common words when common words will do, and it puts the most important idea where the reader will see it first. When you finish a draft, read it aloud: if you stumble over a sentence, your reader will stumble too. Cut the words that do not help, and the rest will be stronger.\n",
    "The weather report said that a storm would arrive in the afternoon. By noon the sky had turned gray, the wind pulled at the trees, and the first heavy drops of rain hit the windows. People hurried home with their collars up, and the streets were soon empty. The storm lasted only an hour, and when it passed, the air was cool and fresh and the whole town smelled of wet earth.\n",
    "Every system has limits, and good design begins by knowing them. A bridge is built for a certain weight, a boat for a certain wave, and a program for a certain amount of data. When the limits are written down and checked, surprises become rare. When they are ignored, the system works well on most days and fails badly on the one day that matters.\n",
    "At the end of the year the town held a festival by the river. There were games for the children, music in the evening, and long tables covered with food that every family had brought to share. The mayor gave a short speech, which everyone agreed was the best speech he had ever given, mostly because it was short. Then the lanterns were lit, and the whole town walked down to the water to watch them",
    " float away in the dark.\n",
};

#define N_SPECIAL 8
static const char *const special_tokens[N_SPECIAL] = {
    "<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>",
    "<|user|>", "<|assistant|>", "<|system|>", "<|end|>",
};

/* Phi-4's chat template (ChatML-like, <|im_sep|> after the role). */
static const char chat_template[] =
    "{% for message in messages %}{% if (message['role'] == 'system') %}"
    "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% elif (message['role'] == 'user') %}"
    "{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% elif (message['role'] == 'assistant') %}"
    "{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_UNUSED = 5 };

typedef struct vocab {
    char **tok;          /* n_tok UTF-8 strings (byte-level alphabet) */
    uint32_t n_tok;
    uint32_t *merge_a, *merge_b; /* token ids of each merge's halves */
    uint32_t n_merges;
} vocab;

static void vocab_free(vocab *v)
{
    if (v->tok)
        for (uint32_t i = 0; i < v->n_tok; i++) free(v->tok[i]);
    free(v->tok);
    free(v->merge_a);
    free(v->merge_b);
    memset(v, 0, sizeof *v);
}

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the others are shifted to
 * U+0100 and up, so every byte has a visible, space-free character. Token i is byte order[i]. */
static void byte_alphabet(uint8_t order[256], char utf8[256][3])
{
    int n = 0, is_direct[256] = { 0 };
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
            is_direct[b] = 1;
            order[n++] = (uint8_t)b;
        }
    for (int b = 0; b < 256; b++)
        if (!is_direct[b]) order[n++] = (uint8_t)b;
    for (int b = 0; b < 256; b++) {
        unsigned cp = is_direct[b] ? (unsigned)b : 0;
        if (!is_direct[b]) {
            /* position of b among the non-direct bytes */
            cp = 256;
            for (int k = 0; k < b; k++) cp += !is_direct[k];
        }
        if (cp < 0x80) {
            utf8[b][0] = (char)cp;
            utf8[b][1] = 0;
        } else {
            utf8[b][0] = (char)(0xc0 | (cp >> 6));
            utf8[b][1] = (char)(0x80 | (cp & 0x3f));
            utf8[b][2] = 0;
        }
    }
}

static int char_class(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    if (c >= '0' && c <= '9') return 2;
    if (c == ' ' || c == '\n' || c == '\t') return 3;
    return 4;
}

typedef struct pair_slot { uint32_t key_a, key_b, count, used; } pair_slot;

/* Learns up to max_merges merges (0 = as many as pairs occurring twice or more allow). */
static vkllm_status learn_vocab(uint32_t max_merges, vocab *v, char *err, size_t err_size)
{
    memset(v, 0, sizeof *v);
    uint8_t order[256];
    char utf8[256][3];
    byte_alphabet(order, utf8);
    uint32_t byte_tok[256];
    for (uint32_t i = 0; i < 256; i++) byte_tok[order[i]] = i;

    size_t text_len = 0;
    for (size_t i = 0; i < sizeof bpe_text / sizeof bpe_text[0]; i++) text_len += strlen(bpe_text[i]);
    /* symbols of the text, words separated by UINT32_MAX; a word is " " + letters, " " + digits,
     * " " + punctuation, or a whitespace run, as a GPT-2 style pre-tokenizer would cut */
    uint32_t *sym = malloc((text_len * 2 + 1) * sizeof(uint32_t));
    uint32_t cap = max_merges ? max_merges : 4096;
    v->tok = calloc(256 + (size_t)cap, sizeof(char *));
    v->merge_a = malloc(cap * sizeof(uint32_t));
    v->merge_b = malloc(cap * sizeof(uint32_t));
    pair_slot *tab = malloc(65536 * sizeof(pair_slot));
    if (!sym || !v->tok || !v->merge_a || !v->merge_b || !tab) {
        free(sym);
        free(tab);
        vocab_free(v);
        snprintf(err, err_size, "out of memory building the vocabulary");
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < 256; i++) {
        v->tok[i] = malloc(3);
        if (!v->tok[i]) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        else memcpy(v->tok[i], utf8[order[i]], 3);
    }
    v->n_tok = 256;
    /* the text as one string, then cut into words */
    char *text = malloc(text_len + 1);
    size_t n = 0;
    if (!text) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    else {
        text[0] = 0;
        size_t k = 0;
        for (size_t i = 0; i < sizeof bpe_text / sizeof bpe_text[0]; i++) {
            size_t l = strlen(bpe_text[i]);
            memcpy(text + k, bpe_text[i], l + 1);
            k += l;
        }
        for (size_t i = 0; i < text_len;) {
            size_t j = i;
            int c = char_class((uint8_t)text[i]);
            if (text[i] == ' ' && i + 1 < text_len && char_class((uint8_t)text[i + 1]) != 3) {
                j++;
                c = char_class((uint8_t)text[j]);
            }
            if (c == 3) j++;
            else
                while (j < text_len && char_class((uint8_t)text[j]) == c) j++;
            sym[n++] = UINT32_MAX;
            for (; i < j; i++) sym[n++] = byte_tok[(uint8_t)text[i]];
        }
        free(text);
    }
    while (st == VKLLM_OK && v->n_merges < cap) {
        memset(tab, 0, 65536 * sizeof(pair_slot));
        pair_slot *best = NULL;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t a = sym[i], b = sym[i + 1];
            if (a == UINT32_MAX || b == UINT32_MAX) continue;
            uint32_t h = (a * 2654435761u ^ b * 40503u) & 65535u;
            while (tab[h].used && (tab[h].key_a != a || tab[h].key_b != b)) h = (h + 1) & 65535u;
            pair_slot *s = &tab[h];
            s->used = 1;
            s->key_a = a;
            s->key_b = b;
            s->count++;
            if (!best || s->count > best->count) best = s;
            else if (s->count == best->count && s != best) {
                /* ties go to the smaller (a, b) by text, so the result depends on the text only */
                int c = strcmp(v->tok[a], v->tok[best->key_a]);
                if (c == 0) c = strcmp(v->tok[b], v->tok[best->key_b]);
                if (c < 0) best = s;
            }
        }
        if (!best || best->count < 2) break;
        uint32_t a = best->key_a, b = best->key_b, id = v->n_tok;
        size_t la = strlen(v->tok[a]), lb = strlen(v->tok[b]);
        char *t = malloc(la + lb + 1);
        if (!t) {
            st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
            break;
        }
        memcpy(t, v->tok[a], la);
        memcpy(t + la, v->tok[b], lb + 1);
        v->tok[id] = t;
        v->n_tok++;
        v->merge_a[v->n_merges] = a;
        v->merge_b[v->n_merges] = b;
        v->n_merges++;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
                sym[o++] = id;
                i++;
            } else {
                sym[o++] = sym[i];
            }
        }
        n = o;
    }
    free(sym);
    free(tab);
    if (st != VKLLM_OK) {
        vocab_free(v);
        snprintf(err, err_size, "out of memory building the vocabulary");
    }
    return st;
}

uint32_t vkllm_mkmodel_max_merges(void)
{
    vocab v;
    char err[128];
    if (learn_vocab(0, &v, err, sizeof err) != VKLLM_OK) return 0;
    uint32_t n = v.n_merges;
    vocab_free(&v);
    return n;
}

uint32_t vkllm_mkmodel_base_vocab(uint32_t n_merges) { return 256 + n_merges + N_SPECIAL; }

/* ------------------------------------------------------------------------------------------------
 * Configuration */

vkllm_status vkllm_mkmodel_preset(const char *preset, vkllm_mkmodel_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->ftype = VKLLM_MKMODEL_Q4_K_M;
    cfg->seed = 1;
    cfg->eps = 1e-5f;
    cfg->n_merges = 600;
    if (preset && !strcmp(preset, "tiny")) {
        cfg->name = "vkllm tiny (random weights)";
        cfg->n_layer = 2;
        cfg->n_embd = 256;
        cfg->n_head = 4;
        cfg->n_head_kv = 2;
        cfg->n_ff = 512;
        /* the real vocabulary (864 tokens), rounded up to a multiple of 256 */
        cfg->n_vocab = (vkllm_mkmodel_base_vocab(cfg->n_merges) + 255) / 256 * 256;
        cfg->n_ctx = 4096;
        cfg->rope_base = 10000.0f;
        return VKLLM_OK;
    }
    if (preset && !strcmp(preset, "phi3-mini")) {
        cfg->name = "vkllm phi3-mini shape (random weights)";
        cfg->n_layer = 32;
        cfg->n_embd = 3072;
        cfg->n_head = 32;
        cfg->n_head_kv = 32;
        cfg->n_ff = 8192;
        cfg->n_vocab = 32064;
        cfg->n_ctx = 4096;
        cfg->rope_base = 10000.0f;
        cfg->sliding_window = 2047; /* what Phi-3-mini-4k's config says */
        return VKLLM_OK;
    }
    if (preset && !strcmp(preset, "phi4")) {
        cfg->name = "vkllm phi4 shape (random weights)";
        cfg->n_layer = 40;
        cfg->n_embd = 5120;
        cfg->n_head = 40;
        cfg->n_head_kv = 10;
        cfg->n_ff = 17920;
        cfg->n_vocab = 100352;
        cfg->n_ctx = 16384;
        cfg->rope_base = 250000.0f;
        return VKLLM_OK;
    }
    return VKLLM_ERROR_CONFIG;
}

vkllm_status vkllm_mkmodel_parse_ftype(const char *s, vkllm_mkmodel_ftype *out)
{
    static const struct { const char *name; vkllm_mkmodel_ftype t; } names[] = {
        { "f32", VKLLM_MKMODEL_F32 }, { "f16", VKLLM_MKMODEL_F16 }, { "q8_0", VKLLM_MKMODEL_Q8_0 },
        { "q4_0", VKLLM_MKMODEL_Q4_0 }, { "q4_k_m", VKLLM_MKMODEL_Q4_K_M },
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].t;
            return VKLLM_OK;
        }
    return VKLLM_ERROR_CONFIG;
}

const char *vkllm_mkmodel_ftype_name(vkllm_mkmodel_ftype t)
{
    switch (t) {
    case VKLLM_MKMODEL_F32: return "f32";
    case VKLLM_MKMODEL_F16: return "f16";
    case VKLLM_MKMODEL_Q8_0: return "q8_0";
    case VKLLM_MKMODEL_Q4_0: return "q4_0";
    case VKLLM_MKMODEL_Q4_K_M: return "q4_k_m";
    }
    return "unknown";
}

enum kind { K_TOKEN_EMBD, K_ATTN_NORM, K_ATTN_QKV, K_ATTN_OUT, K_FFN_NORM, K_FFN_UP, K_FFN_DOWN,
            K_OUTPUT_NORM, K_OUTPUT };
static const char *const layer_names[] = { NULL, "attn_norm", "attn_qkv", "attn_output", "ffn_norm",
                                           "ffn_up", "ffn_down" };

/* llama.cpp's rule for the layers that get more bits in the _M mixes. */
static int use_more_bits(uint32_t i, uint32_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i >= n / 8 && (i - n / 8) % 3 == 2);
}

static vkllm_dtype kind_type(const vkllm_mkmodel_config *cfg, enum kind k, uint32_t layer, uint64_t ne0)
{
    if (k == K_ATTN_NORM || k == K_FFN_NORM || k == K_OUTPUT_NORM) return VKLLM_DTYPE_F32;
    vkllm_dtype t;
    switch (cfg->ftype) {
    case VKLLM_MKMODEL_F32: t = VKLLM_DTYPE_F32; break;
    case VKLLM_MKMODEL_F16: t = VKLLM_DTYPE_F16; break;
    case VKLLM_MKMODEL_Q8_0: t = VKLLM_DTYPE_Q8_0; break;
    case VKLLM_MKMODEL_Q4_0: t = k == K_OUTPUT ? VKLLM_DTYPE_Q6_K : VKLLM_DTYPE_Q4_0; break;
    default:
        if (k == K_OUTPUT) t = VKLLM_DTYPE_Q6_K;
        else if (k == K_ATTN_QKV) t = VKLLM_DTYPE_Q5_K;
        else if (k == K_FFN_DOWN && use_more_bits(layer, cfg->n_layer)) t = VKLLM_DTYPE_Q6_K;
        else t = VKLLM_DTYPE_Q4_K;
        break;
    }
    /* rows that are not whole blocks: llama.cpp falls back the same way (to the nearest type it has) */
    if (ne0 % vkllm_dtype_block_elems(t)) t = t == VKLLM_DTYPE_Q4_K ? VKLLM_DTYPE_Q4_0 : VKLLM_DTYPE_Q8_0;
    if (ne0 % vkllm_dtype_block_elems(t)) t = VKLLM_DTYPE_F16;
    return t;
}

typedef struct tplan {
    char name[64];
    enum kind kind;
    vkllm_dtype type;
    uint32_t n_dims;
    uint64_t ne[2];
    float sigma;             /* standard deviation of the weights; norms: 1 + noise */
    uint64_t row_bytes, rows_per_job, first_job;
} tplan;

static uint64_t kind_ne0(const vkllm_mkmodel_config *c, enum kind k)
{
    return k == K_FFN_DOWN ? c->n_ff : c->n_embd;
}

static uint64_t kind_ne1(const vkllm_mkmodel_config *c, enum kind k)
{
    uint64_t head_dim = c->n_embd / c->n_head;
    switch (k) {
    case K_TOKEN_EMBD: case K_OUTPUT: return c->n_vocab;
    case K_ATTN_QKV: return c->n_embd + 2ull * c->n_head_kv * head_dim;
    case K_ATTN_OUT: case K_FFN_DOWN: return c->n_embd;
    case K_FFN_UP: return 2ull * c->n_ff;
    default: return 1;
    }
}

static float kind_sigma(const vkllm_mkmodel_config *c, enum kind k)
{
    /* N(0, 1/sqrt(fan_in)) keeps each projection's output at unit scale; the two residual-branch
     * outputs per layer are scaled by 1/sqrt(2 n_layer) so the residual stream stays O(1) */
    double res = 1.0 / sqrt(2.0 * c->n_layer);
    switch (k) {
    case K_TOKEN_EMBD: return 1.0f;
    case K_ATTN_QKV: case K_FFN_UP: case K_OUTPUT: return (float)(1.0 / sqrt((double)c->n_embd));
    case K_ATTN_OUT: return (float)(res / sqrt((double)c->n_embd));
    case K_FFN_DOWN: return (float)(res / sqrt((double)c->n_ff));
    default: return 0.02f;
    }
}

static int parse_name(const vkllm_mkmodel_config *cfg, const char *name, enum kind *k, uint32_t *layer)
{
    *layer = 0;
    if (!strcmp(name, "token_embd.weight")) { *k = K_TOKEN_EMBD; return 1; }
    if (!strcmp(name, "output_norm.weight")) { *k = K_OUTPUT_NORM; return 1; }
    if (!strcmp(name, "output.weight")) { *k = K_OUTPUT; return 1; }
    if (strncmp(name, "blk.", 4) || name[4] < '0' || name[4] > '9') return 0;
    char *end;
    unsigned long l = strtoul(name + 4, &end, 10);
    if (*end != '.' || l >= cfg->n_layer) return 0;
    for (int i = K_ATTN_NORM; i <= K_FFN_DOWN; i++) {
        size_t n = strlen(layer_names[i]);
        if (!strncmp(end + 1, layer_names[i], n) && !strcmp(end + 1 + n, ".weight")) {
            *k = (enum kind)i;
            *layer = (uint32_t)l;
            return 1;
        }
    }
    return 0;
}

vkllm_status vkllm_mkmodel_tensor_type(const vkllm_mkmodel_config *cfg, const char *name, vkllm_dtype *out)
{
    enum kind k;
    uint32_t layer;
    if (!cfg || !name || !parse_name(cfg, name, &k, &layer)) return VKLLM_ERROR_CONFIG;
    *out = kind_type(cfg, k, layer, kind_ne0(cfg, k));
    return VKLLM_OK;
}

static vkllm_status check_config(const vkllm_mkmodel_config *c, char *err, size_t n)
{
#define REQ(cond, ...) do { if (!(cond)) { snprintf(err, n, __VA_ARGS__); return VKLLM_ERROR_CONFIG; } } while (0)
    REQ(c->n_layer >= 1 && c->n_layer <= 4096, "layers = %" PRIu32 ": must be 1..4096", c->n_layer);
    REQ(c->n_embd >= 2 && c->n_embd <= (1u << 20), "embd = %" PRIu32 ": must be 2..1048576", c->n_embd);
    REQ(c->n_head >= 1 && c->n_embd % c->n_head == 0, "heads = %" PRIu32 ": must divide embd = %" PRIu32,
        c->n_head, c->n_embd);
    REQ((c->n_embd / c->n_head) % 2 == 0, "head size embd/heads = %" PRIu32 " must be even (RoPE rotates pairs)",
        c->n_embd / c->n_head);
    REQ(c->n_head_kv >= 1 && c->n_head % c->n_head_kv == 0,
        "kv-heads = %" PRIu32 ": must divide heads = %" PRIu32, c->n_head_kv, c->n_head);
    REQ(c->n_ff >= 1 && c->n_ff <= (1u << 20), "ff = %" PRIu32 ": must be 1..1048576", c->n_ff);
    REQ(c->n_merges <= 4096, "merges = %" PRIu32 ": at most 4096", c->n_merges);
    REQ(c->n_vocab >= vkllm_mkmodel_base_vocab(c->n_merges) && c->n_vocab <= (1u << 24),
        "vocab = %" PRIu32 ": must be %" PRIu32 "..16777216 (256 byte tokens + %" PRIu32 " merges + %d special)",
        c->n_vocab, vkllm_mkmodel_base_vocab(c->n_merges), c->n_merges, N_SPECIAL);
    REQ(c->n_ctx >= 1, "ctx = %" PRIu32 ": must be at least 1", c->n_ctx);
    REQ(c->rope_base > 0 && isfinite(c->rope_base), "rope-base = %g: must be a positive number", c->rope_base);
    REQ(c->eps > 0 && c->eps < 1, "eps = %g: must be in (0, 1)", c->eps);
    REQ(vkllm_mkmodel_parse_ftype(vkllm_mkmodel_ftype_name(c->ftype), &(vkllm_mkmodel_ftype){ 0 }) == VKLLM_OK,
        "type %d is not one of f32 f16 q8_0 q4_0 q4_k_m", (int)c->ftype);
    return VKLLM_OK;
#undef REQ
}

/* ------------------------------------------------------------------------------------------------
 * Random weights */

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static rng rng_for(uint64_t seed, uint64_t tensor, uint64_t chunk)
{
    uint64_t x = seed ^ (tensor * 0xd1342543de82ef95ull) ^ (chunk * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    rng r;
    for (int i = 0; i < 4; i++) r.s[i] = splitmix(&x);
    return r;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static inline uint64_t next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), scaled to unit
 * variance. Bounded by +-3.46, which is harmless for random weights and much cheaper than exact. */
static inline float normalish(rng *r)
{
    uint64_t u = next(r);
    uint32_t s = (uint32_t)(u & 0xffff) + (uint32_t)((u >> 16) & 0xffff) + (uint32_t)((u >> 32) & 0xffff) +
                 (uint32_t)(u >> 48);
    return ((float)s - 131070.0f) * (1.7320508f / 65536.0f);
}

/* Little-endian byte order of the generator's words, so files match across hosts. */
static void random_bytes(rng *r, uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v = next(r);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(p, &v, 8);
#else
        for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
#endif
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = next(r);
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put16(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* fp16 of v, never zero (tiny scales become the smallest subnormal rather than erasing a block) */
static uint16_t half_nz(float v)
{
    uint16_t h = vkllm_fp32_to_fp16(v);
    if ((h & 0x7fffu) == 0) h = (uint16_t)((h & 0x8000u) | 1u);
    return h;
}

/* Valid quantized blocks drawn directly: uniform random codes and scales, with the block scale chosen
 * so the dequantized values have mean ~0 and standard deviation sigma. For a code q uniform over its
 * range, the constants below are sqrt(E[sc^2] * E[(q - centre)^2]):
 *   Q8_0: q in -128..127, d random sign:               sqrt(5461.5)           = 73.90
 *   Q4_0: q-8 in -8..7, d random sign:                 sqrt(21.5)             = 4.637
 *   Q4_K: sc = m in 32..63, dmin = 7.5 d, q in 0..15:  sqrt(2341.5 * 21.25)   = 223.06
 *   Q5_K: sc = m in 32..63, dmin = 15.5 d, q in 0..31: sqrt(2341.5 * 85.25)   = 446.80
 *   Q6_K: |sc| in 64..127 random sign, q-32:           sqrt(9461.5 * 341.5)   = 1797.5
 * With m = sc and dmin = centre * d every K sub-block is centred exactly (up to fp16 rounding). */
static void gen_blocks(rng *r, vkllm_dtype t, float sigma, uint8_t *out, size_t nblocks)
{
    size_t bb = vkllm_dtype_block_bytes(t);
    for (size_t b = 0; b < nblocks; b++, out += bb) {
        uint64_t u = next(r);
        switch (t) {
        case VKLLM_DTYPE_Q8_0:
            put16(out, half_nz((u & 1) ? -sigma / 73.90f : sigma / 73.90f));
            random_bytes(r, out + 2, 32);
            break;
        case VKLLM_DTYPE_Q4_0:
            put16(out, half_nz((u & 1) ? -sigma / 4.637f : sigma / 4.637f));
            random_bytes(r, out + 2, 16);
            break;
        case VKLLM_DTYPE_Q4_K:
        case VKLLM_DTYPE_Q5_K: {
            int q5 = t == VKLLM_DTYPE_Q5_K;
            uint16_t dh = half_nz(sigma / (q5 ? 446.80f : 223.06f));
            float d = vkllm_fp16_to_fp32(dh);
            put16(out, dh);
            put16(out + 2, vkllm_fp32_to_fp16(d * (q5 ? 15.5f : 7.5f)));
            uint8_t sc[8];
            for (int i = 0; i < 8; i++) sc[i] = (uint8_t)(32 + ((u >> (5 * i)) & 31));
            vkllm_k_scales_pack(out + 4, sc, sc);
            random_bytes(r, out + 16, q5 ? 160 : 128);
            break;
        }
        case VKLLM_DTYPE_Q6_K: {
            uint64_t v = next(r);
            random_bytes(r, out, 192);
            for (int i = 0; i < 16; i++) {
                int s = 64 + (int)((i < 10 ? u >> (6 * i) : v >> (6 * (i - 10))) & 63);
                if ((v >> (40 + i)) & 1) s = -s;
                out[192 + i] = (uint8_t)(int8_t)s;
            }
            put16(out + 208, half_nz(sigma / 1797.5f));
            break;
        }
        default:
            break;
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Streaming writer: workers fill a ring of chunk buffers, the caller writes them in order */

#define CHUNK_BYTES (4u << 20)
#define CHUNK_ELEMS (1u << 20)

typedef struct job { uint32_t t; uint64_t row0, rows; } job;

typedef struct pool {
    const vkllm_mkmodel_config *cfg;
    const tplan *plan;
    const job *jobs;
    uint64_t n_jobs;
    unsigned n_slots;
    uint8_t **slot;
    uint64_t *slot_job;      /* which job a slot holds, UINT64_MAX while being filled */
    uint64_t next, written;
    int failed;
    char err[256];
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
} pool;

static int float_path(const vkllm_mkmodel_config *cfg, vkllm_dtype t)
{
    return t == VKLLM_DTYPE_F32 || t == VKLLM_DTYPE_F16 || t == VKLLM_DTYPE_BF16 || cfg->exact_quant;
}

static vkllm_status gen_job(const pool *p, uint64_t j, uint8_t *out, float *scratch)
{
    const job *jb = &p->jobs[j];
    const tplan *tp = &p->plan[jb->t];
    rng r = rng_for(p->cfg->seed, jb->t, j - tp->first_job);
    uint64_t n = jb->rows * tp->ne[0];
    int norm = tp->kind == K_ATTN_NORM || tp->kind == K_FFN_NORM || tp->kind == K_OUTPUT_NORM;
    if (!float_path(p->cfg, tp->type)) {
        gen_blocks(&r, tp->type, tp->sigma, out, (size_t)(n / vkllm_dtype_block_elems(tp->type)));
        return VKLLM_OK;
    }
    for (uint64_t i = 0; i < n; i++) scratch[i] = norm ? 1.0f + tp->sigma * normalish(&r) : tp->sigma * normalish(&r);
    if (tp->type == VKLLM_DTYPE_F32) {
        memcpy(out, scratch, (size_t)n * 4);
        return VKLLM_OK;
    }
    if (tp->type == VKLLM_DTYPE_F16) {
        for (uint64_t i = 0; i < n; i++) put16(out + 2 * i, vkllm_fp32_to_fp16(scratch[i]));
        return VKLLM_OK;
    }
    return vkllm_quantize(tp->type, scratch, out, (size_t)n);
}

static void *worker(void *arg)
{
    pool *p = arg;
    float *scratch = malloc((size_t)CHUNK_ELEMS * sizeof(float));
    pthread_mutex_lock(&p->mu);
    if (!scratch && !p->failed) {
        p->failed = 1;
        snprintf(p->err, sizeof p->err, "out of memory for a worker's scratch buffer");
        pthread_cond_broadcast(&p->cv_done);
    }
    for (;;) {
        while (!p->failed && p->next < p->n_jobs && p->next >= p->written + p->n_slots)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->failed || p->next >= p->n_jobs) break;
        uint64_t j = p->next++;
        pthread_mutex_unlock(&p->mu);
        vkllm_status s = gen_job(p, j, p->slot[j % p->n_slots], scratch);
        pthread_mutex_lock(&p->mu);
        if (s != VKLLM_OK && !p->failed) {
            p->failed = 1;
            snprintf(p->err, sizeof p->err, "quantizing tensor '%s' failed: %s", p->plan[p->jobs[j].t].name,
                     vkllm_strerror(s));
        }
        p->slot_job[j % p->n_slots] = j;
        pthread_cond_broadcast(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    free(scratch);
    return NULL;
}

static vkllm_status add_metadata(vkllm_gguf_writer *w, const vkllm_mkmodel_config *c, const vocab *v,
                                 char *err, size_t n)
{
    vkllm_status s = VKLLM_OK;
    char **toks = NULL, **merges = NULL;
    int32_t *types = NULL;
    uint32_t base = v->n_tok; /* bytes + merges */
    uint32_t head_dim = c->n_embd / c->n_head;
#define W(x) do { if (s == VKLLM_OK) s = (x); } while (0)
    W(vkllm_gguf_writer_add_string(w, "general.architecture", "phi3"));
    W(vkllm_gguf_writer_add_string(w, "general.type", "model"));
    W(vkllm_gguf_writer_add_string(w, "general.name", c->name ? c->name : "vkllm random model"));
    W(vkllm_gguf_writer_add_u32(w, "general.file_type", (uint32_t)c->ftype));
    if (c->ftype != VKLLM_MKMODEL_F32 && c->ftype != VKLLM_MKMODEL_F16)
        W(vkllm_gguf_writer_add_u32(w, "general.quantization_version", 2));
    W(vkllm_gguf_writer_add_u32(w, "phi3.context_length", c->n_ctx));
    W(vkllm_gguf_writer_add_u32(w, "phi3.rope.scaling.original_context_length", c->n_ctx));
    W(vkllm_gguf_writer_add_u32(w, "phi3.embedding_length", c->n_embd));
    W(vkllm_gguf_writer_add_u32(w, "phi3.feed_forward_length", c->n_ff));
    W(vkllm_gguf_writer_add_u32(w, "phi3.block_count", c->n_layer));
    W(vkllm_gguf_writer_add_u32(w, "phi3.attention.head_count", c->n_head));
    W(vkllm_gguf_writer_add_u32(w, "phi3.attention.head_count_kv", c->n_head_kv));
    W(vkllm_gguf_writer_add_f32(w, "phi3.attention.layer_norm_rms_epsilon", c->eps));
    W(vkllm_gguf_writer_add_u32(w, "phi3.rope.dimension_count", head_dim));
    W(vkllm_gguf_writer_add_f32(w, "phi3.rope.freq_base", c->rope_base));
    W(vkllm_gguf_writer_add_u32(w, "phi3.attention.sliding_window", c->sliding_window));
    W(vkllm_gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2"));
    W(vkllm_gguf_writer_add_string(w, "tokenizer.ggml.pre", "dbrx"));
    toks = calloc(c->n_vocab, sizeof(char *));
    types = malloc((size_t)c->n_vocab * sizeof(int32_t));
    merges = calloc(v->n_merges ? v->n_merges : 1, sizeof(char *));
    if (!toks || !types || !merges) {
        s = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        goto out;
    }
    for (uint32_t i = 0; i < c->n_vocab && s == VKLLM_OK; i++) {
        if (i < base) {
            toks[i] = v->tok[i];
            types[i] = TOKEN_NORMAL;
        } else if (i < base + N_SPECIAL) {
            toks[i] = (char *)special_tokens[i - base];
            types[i] = TOKEN_CONTROL;
        } else {
            toks[i] = malloc(32);
            if (!toks[i]) s = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
            else snprintf(toks[i], 32, "<|dummy_%" PRIu32 "|>", i - base - N_SPECIAL);
            types[i] = TOKEN_UNUSED;
        }
    }
    for (uint32_t i = 0; i < v->n_merges && s == VKLLM_OK; i++) {
        const char *a = v->tok[v->merge_a[i]], *b = v->tok[v->merge_b[i]];
        merges[i] = malloc(strlen(a) + strlen(b) + 2);
        if (!merges[i]) s = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        else sprintf(merges[i], "%s %s", a, b);
    }
    W(vkllm_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", (const char *const *)toks, c->n_vocab));
    W(vkllm_gguf_writer_add_array(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, types, c->n_vocab));
    W(vkllm_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", (const char *const *)merges, v->n_merges));
    W(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", base + 0));     /* <|endoftext|> */
    W(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", base + 3));     /* <|im_end|> */
    W(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", base + 0));
    W(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id",
                                c->n_vocab > base + N_SPECIAL ? base + N_SPECIAL : base + 0));
    W(vkllm_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 0));
    W(vkllm_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", 0));
    W(vkllm_gguf_writer_add_string(w, "tokenizer.chat_template", chat_template));
    W(vkllm_gguf_writer_add_u64(w, "vkllm.mkmodel.seed", c->seed));
    W(vkllm_gguf_writer_add_bool(w, "vkllm.mkmodel.exact_quant", c->exact_quant != 0));
#undef W
out:
    if (toks)
        for (uint32_t i = base + N_SPECIAL; i < c->n_vocab; i++) free(toks[i]);
    if (merges)
        for (uint32_t i = 0; i < v->n_merges; i++) free(merges[i]);
    free(toks);
    free(types);
    free(merges);
    if (s == VKLLM_ERROR_OUT_OF_HOST_MEMORY) snprintf(err, n, "out of memory writing the vocabulary");
    else if (s != VKLLM_OK) snprintf(err, n, "%s", vkllm_gguf_writer_error(w));
    return s;
}

static vkllm_status run_pool(vkllm_gguf_writer *w, const vkllm_mkmodel_config *cfg, const tplan *plan,
                             const job *jobs, uint64_t n_jobs, uint64_t total, char *err, size_t n)
{
    unsigned threads = cfg->threads;
    if (!threads) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (unsigned)c : 1;
    }
    if (threads > 256) threads = 256;
    pool p;
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.plan = plan;
    p.jobs = jobs;
    p.n_jobs = n_jobs;
    p.n_slots = 2 * threads + 2;
    p.slot = calloc(p.n_slots, sizeof(uint8_t *));
    p.slot_job = malloc(p.n_slots * sizeof(uint64_t));
    pthread_t *tid = calloc(threads, sizeof(pthread_t));
    vkllm_status st = VKLLM_OK;
    if (!p.slot || !p.slot_job || !tid) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    for (unsigned i = 0; st == VKLLM_OK && i < p.n_slots; i++) {
        p.slot[i] = malloc(CHUNK_BYTES);
        p.slot_job[i] = UINT64_MAX;
        if (!p.slot[i]) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    if (st != VKLLM_OK) snprintf(err, n, "out of memory for %u chunk buffers", p.n_slots);
    unsigned started = 0;
    if (st == VKLLM_OK) {
        pthread_mutex_init(&p.mu, NULL);
        pthread_cond_init(&p.cv_work, NULL);
        pthread_cond_init(&p.cv_done, NULL);
        for (; started < threads; started++)
            if (pthread_create(&tid[started], NULL, worker, &p) != 0) break;
        if (!started) {
            st = VKLLM_ERROR_INTERNAL;
            snprintf(err, n, "could not start a worker thread");
        }
    }
    uint64_t done_bytes = 0;
    for (uint64_t j = 0; st == VKLLM_OK && j < n_jobs; j++) {
        pthread_mutex_lock(&p.mu);
        while (!p.failed && p.slot_job[j % p.n_slots] != j) pthread_cond_wait(&p.cv_done, &p.mu);
        int failed = p.failed;
        pthread_mutex_unlock(&p.mu);
        if (failed) {
            st = VKLLM_ERROR_INTERNAL;
            snprintf(err, n, "%s", p.err);
            break;
        }
        const tplan *tp = &plan[jobs[j].t];
        size_t bytes = (size_t)(jobs[j].rows * tp->row_bytes);
        st = vkllm_gguf_writer_write_data(w, p.slot[j % p.n_slots], bytes);
        if (st != VKLLM_OK) snprintf(err, n, "%s", vkllm_gguf_writer_error(w));
        done_bytes += bytes;
        if (cfg->progress) cfg->progress(cfg->progress_user, done_bytes, total);
        pthread_mutex_lock(&p.mu);
        p.written = j + 1;
        if (st != VKLLM_OK) p.failed = 1;
        pthread_cond_broadcast(&p.cv_work);
        pthread_mutex_unlock(&p.mu);
    }
    if (started) {
        pthread_mutex_lock(&p.mu);
        if (st != VKLLM_OK) p.failed = 1;
        pthread_cond_broadcast(&p.cv_work);
        pthread_mutex_unlock(&p.mu);
        for (unsigned i = 0; i < started; i++) pthread_join(tid[i], NULL);
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.cv_work);
        pthread_cond_destroy(&p.cv_done);
    }
    if (p.slot)
        for (unsigned i = 0; i < p.n_slots; i++) free(p.slot[i]);
    free(p.slot);
    free(p.slot_job);
    free(tid);
    return st;
}

vkllm_status vkllm_mkmodel_write(const vkllm_mkmodel_config *cfg, const char *path, uint64_t *file_size,
                                 char *err, size_t err_size)
{
    char dummy[8];
    if (!err || !err_size) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = 0;
    if (!cfg) {
        snprintf(err, err_size, "NULL config");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    vkllm_status st = check_config(cfg, err, err_size);
    if (st != VKLLM_OK) return st;
    vocab v;
    st = learn_vocab(cfg->n_merges, &v, err, err_size);
    if (st != VKLLM_OK) return st;
    if (v.n_merges < cfg->n_merges) {
        snprintf(err, err_size, "merges = %" PRIu32 ": the built-in text yields only %" PRIu32, cfg->n_merges,
                 v.n_merges);
        vocab_free(&v);
        return VKLLM_ERROR_CONFIG;
    }
    uint32_t n_t = 3 + 6 * cfg->n_layer;
    tplan *plan = calloc(n_t, sizeof(tplan));
    job *jobs = NULL;
    vkllm_gguf_writer *w = NULL;
    if (!plan) {
        st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        snprintf(err, err_size, "out of memory");
        goto out;
    }
    uint32_t k = 0;
    for (int i = -1; i <= (int)cfg->n_layer; i++) {
        enum kind kinds[6];
        int nk = 0;
        if (i == -1) kinds[nk++] = K_TOKEN_EMBD;
        else if (i == (int)cfg->n_layer) { kinds[nk++] = K_OUTPUT_NORM; kinds[nk++] = K_OUTPUT; }
        else for (int q = K_ATTN_NORM; q <= K_FFN_DOWN; q++) kinds[nk++] = (enum kind)q;
        for (int q = 0; q < nk; q++) {
            tplan *tp = &plan[k++];
            tp->kind = kinds[q];
            if (i < 0 || i == (int)cfg->n_layer)
                snprintf(tp->name, sizeof tp->name, "%s", kinds[q] == K_TOKEN_EMBD ? "token_embd.weight" :
                         kinds[q] == K_OUTPUT ? "output.weight" : "output_norm.weight");
            else snprintf(tp->name, sizeof tp->name, "blk.%d.%s.weight", i, layer_names[kinds[q]]);
            tp->ne[0] = kind_ne0(cfg, tp->kind);
            tp->ne[1] = kind_ne1(cfg, tp->kind);
            tp->n_dims = tp->ne[1] == 1 ? 1 : 2;
            tp->type = kind_type(cfg, tp->kind, i < 0 ? 0 : (uint32_t)i, tp->ne[0]);
            tp->sigma = kind_sigma(cfg, tp->kind);
            uint64_t rb;
            vkllm_dtype_bytes(tp->type, tp->ne[0], &rb);
            tp->row_bytes = rb;
            uint64_t r1 = CHUNK_BYTES / rb, r2 = CHUNK_ELEMS / tp->ne[0];
            uint64_t rows = r1 < r2 ? r1 : r2;
            tp->rows_per_job = rows ? rows : 1;
        }
    }
    uint64_t n_jobs = 0;
    for (uint32_t i = 0; i < n_t; i++) {
        plan[i].first_job = n_jobs;
        n_jobs += (plan[i].ne[1] + plan[i].rows_per_job - 1) / plan[i].rows_per_job;
    }
    jobs = malloc((size_t)n_jobs * sizeof(job));
    if (!jobs) {
        st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        snprintf(err, err_size, "out of memory");
        goto out;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < n_t; i++) {
        uint64_t j = plan[i].first_job;
        for (uint64_t r = 0; r < plan[i].ne[1]; r += plan[i].rows_per_job, j++) {
            jobs[j].t = i;
            jobs[j].row0 = r;
            jobs[j].rows = plan[i].ne[1] - r < plan[i].rows_per_job ? plan[i].ne[1] - r : plan[i].rows_per_job;
        }
        total += plan[i].ne[1] * plan[i].row_bytes;
    }
    st = vkllm_gguf_writer_create(path ? path : "/dev/null", &w, err, err_size);
    if (st == VKLLM_OK) st = add_metadata(w, cfg, &v, err, err_size);
    for (uint32_t i = 0; st == VKLLM_OK && i < n_t; i++) {
        st = vkllm_gguf_writer_add_tensor(w, plan[i].name, plan[i].type, plan[i].n_dims, plan[i].ne);
        if (st != VKLLM_OK) snprintf(err, err_size, "%s", vkllm_gguf_writer_error(w));
    }
    if (st == VKLLM_OK && file_size) *file_size = vkllm_gguf_writer_file_size(w);
    if (st == VKLLM_OK && path) {
        st = vkllm_gguf_writer_write_header(w);
        if (st != VKLLM_OK) snprintf(err, err_size, "%s", vkllm_gguf_writer_error(w));
        if (st == VKLLM_OK) st = run_pool(w, cfg, plan, jobs, n_jobs, total, err, err_size);
        if (st == VKLLM_OK) {
            st = vkllm_gguf_writer_finish(w);
            if (st != VKLLM_OK) snprintf(err, err_size, "%s", vkllm_gguf_writer_error(w));
        }
    }
out:
    vkllm_gguf_writer_destroy(w);
    free(jobs);
    free(plan);
    vocab_free(&v);
    return st;
}
